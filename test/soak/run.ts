// The soak test: `npm run soak -- --seconds 60`.
//
// Three example replicas (Express, Fastify, Koa) on 127.0.0.1 serve a client
// loop that asks for users and cached reports, while every 10 s one replica
// (in turn) is taken out of the client's rotation as a load balancer's health
// check would, its requests in flight are let finish, and it is killed with
// SIGKILL (its peers see resets and refused connections, as after a crash).
// About 2 s later it starts again on the same port with the same SELF and
// PEERS, and rejoins the rotation once it says it is listening. No client
// request may fail: any non-200, or network error, from a replica in the
// rotation makes the run exit with code 1. No process is left behind.
import { Pool } from 'undici'
import { reservePorts } from '../helpers/ports.js'
import { Prng } from '../helpers/prng.js'
import type { ExampleFramework, ReplicaStats } from '../helpers/replicas.js'
import { crash, type ReplicaSlot, slotsFor, start, stop } from './fleet.js'

const FRAMEWORKS: ExampleFramework[] = ['express', 'fastify', 'koa']
const CONCURRENCY = 32
const USER_IDS = 3_000
const REPORT_IDS = 200
const REPORT_SHARE = 0.15
const ZIPF_S = 1.0
const KILL_EVERY_MS = 10_000
const DOWN_MS = 2_000
const DB_DELAY_MS = 5
const REQUEST_TIMEOUT_MS = 15_000
const DRAIN_TIMEOUT_MS = 15_000
const SEED = 0x50a4

function parseSeconds(argv: string[]): number {
  const i = argv.indexOf('--seconds')
  if (i === -1) return 60
  const seconds = Number(argv[i + 1])
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 24 * 3600) {
    console.error(`expected --seconds to be a positive number of seconds, got ${String(argv[i + 1])}`)
    process.exit(2)
  }
  return seconds
}

/** zipf draws ids in [0, n) with P(k) ∝ 1 / (k + 1)^s: a few hot ids, a long tail. */
function zipf(r: Prng, n: number, s: number): () => number {
  const cdf = new Float64Array(n)
  let total = 0
  for (let k = 0; k < n; k++) cdf[k] = total += 1 / (k + 1) ** s
  return () => {
    const x = r.next() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((cdf[mid] as number) < x) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Member is a replica as the client sees it: its slot, a connection pool, what is in flight. */
interface Member {
  slot: ReplicaSlot
  pool: Pool
  inRotation: boolean
  inFlight: number
  served: number
  /** killedStats sums what each killed incarnation reported just before its kill. */
  killedStats: { dbCalls: number; renders: number; peerErrors: number; unknown: number }
}

function newPool(slot: ReplicaSlot): Pool {
  return new Pool(`http://127.0.0.1:${slot.port}`, {
    connections: CONCURRENCY,
    pipelining: 1,
    connectTimeout: 5_000,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  })
}

async function statsOf(member: Member): Promise<ReplicaStats | undefined> {
  try {
    const res = await member.pool.request({ method: 'GET', path: '/stats', signal: AbortSignal.timeout(3_000) })
    const body = await res.body.text()
    return res.statusCode === 200 ? (JSON.parse(body) as ReplicaStats) : undefined
  } catch {
    return undefined
  }
}

const seconds = parseSeconds(process.argv.slice(2))
const ports = await reservePorts(FRAMEWORKS.length)
const slots = slotsFor(FRAMEWORKS, ports, { DB_DELAY_MS: String(DB_DELAY_MS) })
const members: Member[] = []
let exitCode = 1
try {
  await Promise.all(slots.map((slot) => start(slot)))
  for (const slot of slots) {
    members.push({
      slot,
      pool: newPool(slot),
      inRotation: true,
      inFlight: 0,
      served: 0,
      killedStats: { dbCalls: 0, renders: 0, peerErrors: 0, unknown: 0 },
    })
  }
  console.log(`soak: ${seconds} s; replicas ${slots.map((s) => `${s.framework} ${s.url}`).join(', ')}`)
  console.log(
    `load: ${CONCURRENCY} concurrent clients, /users/:id over ${USER_IDS} ids and /reports/:id over ${REPORT_IDS} ids ` +
      `(${REPORT_SHARE * 100}% of requests), Zipf s=${ZIPF_S}; DB_DELAY_MS=${DB_DELAY_MS}; ` +
      `one replica SIGKILLed every ${KILL_EVERY_MS / 1000} s, back after ${DOWN_MS / 1000} s`,
  )

  const r = new Prng(SEED)
  const userId = zipf(r, USER_IDS, ZIPF_S)
  const reportId = zipf(r, REPORT_IDS, ZIPF_S)
  const users = new Set<number>()
  const reports = new Set<number>()
  const failures: string[] = []
  let requests = 0
  let failed = 0
  const started = performance.now()
  const deadline = started + seconds * 1000
  let pick = 0

  const client = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const rotation = members.filter((m) => m.inRotation)
      if (rotation.length === 0) {
        await sleep(10)
        continue
      }
      const member = rotation[pick++ % rotation.length] as Member
      const report = r.chance(REPORT_SHARE)
      const id = report ? reportId() : userId()
      ;(report ? reports : users).add(id)
      const path = report ? `/reports/r${id}` : `/users/u${id}`
      member.inFlight++
      requests++
      try {
        const res = await member.pool.request({ method: 'GET', path })
        const body = await res.body.text()
        if (res.statusCode !== 200) {
          failed++
          if (failures.length < 20) failures.push(`${member.slot.framework} GET ${path} → ${res.statusCode} ${body.slice(0, 200)}`)
        } else {
          member.served++
        }
      } catch (err) {
        failed++
        if (failures.length < 20)
          failures.push(`${member.slot.framework} GET ${path} → ${(err as Error & { code?: string }).code ?? ''} ${(err as Error).message}`)
      } finally {
        member.inFlight--
      }
    }
  }

  /** cycle takes one replica out, lets its requests finish, kills it, and brings it back. */
  const cycle = async (member: Member): Promise<void> => {
    const slot = member.slot
    member.inRotation = false
    const drainBy = performance.now() + DRAIN_TIMEOUT_MS
    while (member.inFlight > 0 && performance.now() < drainBy) await sleep(5)
    if (member.inFlight > 0) throw new Error(`${slot.framework}: ${member.inFlight} requests still in flight after ${DRAIN_TIMEOUT_MS} ms`)
    // Its counters die with it: read them last thing before the kill.
    const stats = await statsOf(member)
    if (stats === undefined) member.killedStats.unknown++
    else {
      member.killedStats.dbCalls += stats.dbCalls
      member.killedStats.renders += stats.renders
      member.killedStats.peerErrors += stats.peerErrors
    }
    await crash(slot)
    const t = ((performance.now() - started) / 1000).toFixed(1)
    console.log(`[${t} s] killed ${slot.framework} ${slot.url} (SIGKILL)`)
    await member.pool.destroy().catch(() => {})
    await sleep(DOWN_MS)
    await start(slot)
    slot.restarts++
    member.pool = newPool(slot)
    member.inRotation = true
    console.log(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${slot.framework} ${slot.url} is back in rotation`)
  }

  const killer = async (): Promise<void> => {
    for (let n = 0; ; n++) {
      const at = started + (n + 1) * KILL_EVERY_MS
      if (at >= deadline) return
      await sleep(at - performance.now())
      await cycle(members[n % members.length] as Member)
    }
  }

  await Promise.all([...Array.from({ length: CONCURRENCY }, client), killer()])
  const elapsed = (performance.now() - started) / 1000

  const finalStats = await Promise.all(members.map((m) => statsOf(m)))
  const unexpectedExits = slots.flatMap((s) => s.unexpectedExits)
  const liveDb = finalStats.reduce((sum, s) => sum + (s?.dbCalls ?? 0), 0)
  const killedDb = members.reduce((sum, m) => sum + m.killedStats.dbCalls, 0)
  const liveRenders = finalStats.reduce((sum, s) => sum + (s?.renders ?? 0), 0)
  const killedRenders = members.reduce((sum, m) => sum + m.killedStats.renders, 0)
  const livePeerErrors = finalStats.reduce((sum, s) => sum + (s?.peerErrors ?? 0), 0)
  const killedPeerErrors = members.reduce((sum, m) => sum + m.killedStats.peerErrors, 0)
  const unknown = members.reduce((sum, m) => sum + m.killedStats.unknown, 0) + finalStats.filter((s) => s === undefined).length

  const rows: Array<[string, string]> = [
    ['duration', `${elapsed.toFixed(1)} s`],
    ['client requests', String(requests)],
    ['failed client requests', String(failed)],
    ['requests/s', (requests / elapsed).toFixed(0)],
    ['restarts (SIGKILL + start)', members.map((m) => `${m.slot.framework} ${m.slot.restarts}`).join(' · ')],
    ['unexpected replica exits', String(unexpectedExits.length)],
    [
      'db loads (users) / distinct user ids',
      `${liveDb + killedDb} / ${users.size} (${((liveDb + killedDb) / Math.max(1, users.size)).toFixed(2)} per id)`,
    ],
    ['report renders / distinct report ids', `${liveRenders + killedRenders} / ${reports.size}`],
    ['peerErrors, live replicas at the end', String(livePeerErrors)],
    ['peerErrors, killed incarnations too', String(livePeerErrors + killedPeerErrors)],
  ]
  if (unknown > 0) rows.push(['/stats reads that failed (figures undercount)', String(unknown)])
  console.log('\n| figure | value |\n|---|---:|')
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`)

  console.log(
    '\n| replica | served | restarts | db loads (now) | peerLoads | peerErrors | cache hits | peer requests served |\n|---|---:|---:|---:|---:|---:|---:|---:|',
  )
  members.forEach((m, i) => {
    const s = finalStats[i]
    console.log(
      `| ${m.slot.framework} ${m.slot.url} | ${m.served} | ${m.slot.restarts} | ${s?.dbCalls ?? '?'} | ${s?.peerLoads ?? '?'} | ${s?.peerErrors ?? '?'} | ${s?.cacheHits ?? '?'} | ${s?.serverRequests ?? '?'} |`,
    )
  })
  console.log("(per-replica figures are the current incarnation's: a restarted replica starts from zero)")

  if (failures.length > 0) console.log(`\nfirst failures:\n${failures.join('\n')}`)
  if (unexpectedExits.length > 0) console.log(`\nreplicas that exited on their own:\n${unexpectedExits.join('\n')}`)
  exitCode = failed === 0 && unexpectedExits.length === 0 ? 0 : 1
  console.log(`\nsoak ${exitCode === 0 ? 'passed' : 'FAILED'}`)
} catch (err) {
  console.error('soak aborted:', err)
  exitCode = 1
} finally {
  await Promise.all(members.map((m) => m.pool.destroy().catch(() => {})))
  await Promise.all(slots.map((slot) => stop(slot)))
}
process.exit(exitCode)
