/** tcpHandles counts this process's open TCP handles (sockets and servers). */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length
}

/**
 * settledTcpHandles counts open TCP handles once sockets closing elsewhere
 * are gone (the count holds still for a few polls), for a baseline. To wait
 * for handles to close, poll tcpHandles() with waitFor.
 */
export async function settledTcpHandles(): Promise<number> {
  let last = tcpHandles()
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const now = tcpHandles()
    if (now === last && i >= 2) return now
    last = now
  }
  return last
}
