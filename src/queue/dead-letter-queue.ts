import type { DeadLetter } from '../types.js';

/**
 * Tasks whose attempts ran out, oldest first. Bounded: past `maxSize` the oldest entry is
 * dropped and counted, so a flood of failures cannot grow memory without limit.
 */
export class DeadLetterQueue {
  readonly #entries = new Map<string, DeadLetter>();
  dropped = 0;

  constructor(readonly maxSize: number) {}

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
      const oldest = this.#entries.keys().next().value!;
      this.#entries.delete(oldest);
      this.dropped++;
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
