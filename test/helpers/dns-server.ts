import { createSocket, type RemoteInfo } from 'node:dgram'
import { isIPv4, isIPv6 } from 'node:net'

const TYPE_A = 1
const TYPE_AAAA = 28
const CLASS_IN = 1
const RCODE_FORMERR = 1
const RCODE_SERVFAIL = 2
const RCODE_NXDOMAIN = 3
const RCODE_NOTIMP = 4

/** Records are the addresses one name resolves to. */
export interface Records {
  a?: string[]
  aaaa?: string[]
}

/**
 * DnsServer is a tiny authoritative DNS server on 127.0.0.1 (UDP), so tests
 * resolve through a real `dns.promises.Resolver` without asking any real
 * server. It answers A and AAAA queries from `records` (TTL 0, so nothing is
 * cached), NXDOMAIN for names it does not know, and NOERROR with no answers
 * for a known name without records of the asked type (ENODATA to Node).
 */
export interface DnsServer {
  readonly port: number
  /** records maps lower-case names (no final dot) to their addresses; change it at will. */
  readonly records: Map<string, Records>
  /** mode 'servfail' answers every query with SERVFAIL; 'drop' answers nothing (the resolver times out). */
  mode: 'answer' | 'servfail' | 'drop'
  /** modeFor limits `mode` to queries of one type ('all' by default); the others are answered. */
  modeFor: 'A' | 'AAAA' | 'all'
  /** queries counts the queries received, answered or not. */
  readonly queries: number
  close(): Promise<void>
}

/** startDnsServer binds a DnsServer to 127.0.0.1 on a port the OS picks. */
export async function startDnsServer(records: Record<string, Records> = {}): Promise<DnsServer> {
  const socket = createSocket('udp4')
  const table = new Map(Object.entries(records).map(([name, r]) => [name.toLowerCase(), r]))
  let queries = 0
  const server = {
    port: 0,
    records: table,
    mode: 'answer' as DnsServer['mode'],
    modeFor: 'all' as DnsServer['modeFor'],
    get queries() {
      return queries
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }
  socket.on('message', (msg: Buffer, peer: RemoteInfo) => {
    queries++
    const mode = server.modeFor === 'all' || server.modeFor === queryType(msg) ? server.mode : 'answer'
    if (mode === 'drop') return
    const reply = answer(msg, table, mode === 'servfail')
    if (reply !== undefined) socket.send(reply, peer.port, peer.address)
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject)
      resolve()
    })
  })
  server.port = socket.address().port
  return server
}

/** queryType names the type of the first question when it is A or AAAA (the name is skipped label by label). */
function queryType(msg: Buffer): 'A' | 'AAAA' | undefined {
  let offset = 12
  for (let length = msg[offset]; length !== undefined && length !== 0 && length <= 63; length = msg[offset]) offset += length + 1
  if (offset + 3 > msg.length) return undefined
  const qtype = msg.readUInt16BE(offset + 1)
  return qtype === TYPE_A ? 'A' : qtype === TYPE_AAAA ? 'AAAA' : undefined
}

/** answer builds the reply to one query, or undefined for a packet not worth one. */
function answer(msg: Buffer, table: Map<string, Records>, servfail: boolean): Buffer | undefined {
  if (msg.length < 12) return undefined
  const flags = msg.readUInt16BE(2)
  if (flags & 0x8000) return undefined // a response, not a query
  const opcode = (flags >> 11) & 0xf
  const qdcount = msg.readUInt16BE(4)
  const reply = (rcode: number, question: Buffer, answers: Buffer[] = []): Buffer => {
    const header = Buffer.alloc(12)
    header.writeUInt16BE(msg.readUInt16BE(0), 0) // the query's id
    // QR, the query's opcode, AA, the query's RD, RA, and the rcode.
    header.writeUInt16BE(0x8000 | (opcode << 11) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode, 2)
    header.writeUInt16BE(question.length > 0 ? 1 : 0, 4)
    header.writeUInt16BE(answers.length, 6)
    return Buffer.concat([header, question, ...answers])
  }
  if (opcode !== 0) return reply(RCODE_NOTIMP, Buffer.alloc(0))
  if (qdcount !== 1) return reply(RCODE_FORMERR, Buffer.alloc(0))

  // QNAME: length-prefixed labels up to a zero byte (queries carry no compression).
  const labels: string[] = []
  let offset = 12
  for (;;) {
    const length = msg[offset]
    if (length === undefined || length > 63) return reply(RCODE_FORMERR, Buffer.alloc(0))
    offset++
    if (length === 0) break
    if (offset + length > msg.length) return reply(RCODE_FORMERR, Buffer.alloc(0))
    labels.push(msg.toString('latin1', offset, offset + length))
    offset += length
  }
  if (offset + 4 > msg.length) return reply(RCODE_FORMERR, Buffer.alloc(0))
  const qtype = msg.readUInt16BE(offset)
  const qclass = msg.readUInt16BE(offset + 2)
  const question = msg.subarray(12, offset + 4)
  if (servfail) return reply(RCODE_SERVFAIL, question)

  const records = table.get(labels.join('.').toLowerCase())
  if (records === undefined) return reply(RCODE_NXDOMAIN, question)
  if (qclass !== CLASS_IN) return reply(0, question)
  const addresses = qtype === TYPE_A ? (records.a ?? []).map(ipv4Bytes) : qtype === TYPE_AAAA ? (records.aaaa ?? []).map(ipv6Bytes) : []
  const answers = addresses.map((rdata) => {
    const rr = Buffer.alloc(12)
    rr.writeUInt16BE(0xc00c, 0) // the name: a pointer to the question's
    rr.writeUInt16BE(qtype, 2)
    rr.writeUInt16BE(CLASS_IN, 4)
    rr.writeUInt32BE(0, 6) // TTL 0
    rr.writeUInt16BE(rdata.length, 10)
    return Buffer.concat([rr, rdata])
  })
  return reply(0, question, answers)
}

function ipv4Bytes(ip: string): Buffer {
  if (!isIPv4(ip)) throw new TypeError(`not an IPv4 address: ${ip}`)
  return Buffer.from(ip.split('.').map(Number))
}

/** ipv6Bytes expands '::' and packs the eight groups (no embedded IPv4 form). */
function ipv6Bytes(ip: string): Buffer {
  if (!isIPv6(ip) || ip.includes('.')) throw new TypeError(`not a plain IPv6 address: ${ip}`)
  const [head = '', tail] = ip.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
  const bytes = Buffer.alloc(16)
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2))
  return bytes
}
