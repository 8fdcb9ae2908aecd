/**
 * `target` seen through a Proxy that swaps in `replace(name)` for the methods it returns one for, and
 * reads everything else through, methods bound to the target: a log store whose disk fails, waits or
 * refuses to load, without a LogStore written again for each case.
 */
// biome-ignore lint/suspicious/noExplicitAny: stands in for any method of the target
type Method = (...args: any[]) => unknown

export function intercept<T extends object>(
  target: T,
  replace: (name: PropertyKey) => Method | undefined,
): T {
  return new Proxy(target, {
    get(t, name) {
      const replaced = replace(name)
      if (replaced) return replaced
      const value = Reflect.get(t, name, t)
      return typeof value === 'function' ? value.bind(t) : value
    },
  })
}
