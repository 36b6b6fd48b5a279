/** settledTcpHandles counts open TCP handles once sockets closing elsewhere are gone. */
export async function settledTcpHandles(): Promise<number> {
  const count = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length
  let last = count()
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const now = count()
    if (now === last && i >= 2) return now
    last = now
  }
  return last
}
