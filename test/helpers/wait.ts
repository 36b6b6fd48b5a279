/**
 * waitFor polls `check` every 10 ms until it holds, and fails naming `what`
 * after `ms` (default 5 s): a condition with a deadline, never a fixed sleep.
 */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
