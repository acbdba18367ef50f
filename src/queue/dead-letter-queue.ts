import type { DeadLetter } from '../types.js';

/**
 * Tasks whose attempts ran out, oldest first. Bounded: past `maxSize` the oldest entry is
 * dropped and counted, so a flood of failures cannot grow memory without limit.
 */
export class DeadLetterQueue {
  readonly #entries = new Map<string, DeadLetter>();
  dropped = 0;

  /** `onEvict`: told of an entry dropped to stay within `maxSize` (its task's leftovers can go too). */
  constructor(
    readonly maxSize: number,
    private readonly onEvict: (entry: DeadLetter) => void = () => {},
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  has(taskId: string): boolean {
    return this.#entries.has(taskId);
  }

  add(entry: DeadLetter): void {
    this.#entries.delete(entry.taskId);
    this.#entries.set(entry.taskId, entry);
    if (this.#entries.size > this.maxSize) {
      const oldest = this.#entries.values().next().value!;
      this.#entries.delete(oldest.taskId);
      this.dropped++;
      this.onEvict(oldest);
    }
  }

  take(taskId: string): DeadLetter | undefined {
    const entry = this.#entries.get(taskId);
    this.#entries.delete(taskId);
    return entry;
  }

  list(): DeadLetter[] {
    return [...this.#entries.values()];
  }
}
