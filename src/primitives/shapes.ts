/**
 * Keeps one instance of a short-lived class for as long as the program runs, so that V8 keeps its
 * hidden class, and with it the optimized code of the functions that use the class.
 *
 * Why: V8 reaches the hidden class (map) of an instance with fields through transitions from the
 * class's initial map, and it holds those transitions weakly. When every instance of a class is
 * garbage (a reader made per command and dropped after it), a full collection clears that map, and
 * every optimized function that checked for it is deoptimized ("embedded weak objects cleared").
 * The next burst then runs in the interpreter until V8 optimizes it again: a reader catching up on
 * 100k entries right after a full collection decoded its log three to five times slower.
 *
 * When to use: for a class made afresh on a hot path and dropped soon after, with no instance that
 * lives on. A class that always has a live instance (a table, a node) needs nothing.
 */
const held: object[] = []

/** Holds `instance` forever; returns it. */
export function holdShape<T extends object>(instance: T): T {
  held.push(instance)
  return instance
}
