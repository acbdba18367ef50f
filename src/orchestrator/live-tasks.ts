const CHUNK_BITS = 10;
const CHUNK_SIZE = 1 << CHUNK_BITS;

interface Chunk<T> {
  readonly slots: (T | undefined)[];
  live: number;
}

/** What the index needs of a task. */
export interface Indexed {
  readonly id: string;
  readonly seq: number;
}

/**
 * The live tasks (queued, running, retrying), findable by id.
 *
 * A Map over hundreds of thousands of string keys costs ~700 ns per insert on this class of
 * machine (table growth plus GC), more than all the rest of a submit. So tasks live in chunks
 * indexed by their submission sequence, which generated ids encode (`<prefix><seq base 36>`):
 * insert and delete are two array stores, and a chunk is dropped once its last task ends.
 * Only caller-chosen ids go through a Map.
 */
export class LiveTasks<T extends Indexed> {
  readonly #chunks = new Map<number, Chunk<T>>();
  readonly #byCallerId = new Map<string, T>();
  #size = 0;

  constructor(readonly idPrefix: string) {}

  get size(): number {
    return this.#size;
  }

  generatedId(seq: number): string {
    return this.idPrefix + seq.toString(36);
  }

  add(task: T, callerChosenId: boolean): void {
    const chunkNo = task.seq >>> CHUNK_BITS;
    let chunk = this.#chunks.get(chunkNo);
    if (chunk === undefined) {
      chunk = { slots: new Array<T | undefined>(CHUNK_SIZE), live: 0 };
      this.#chunks.set(chunkNo, chunk);
    }
    chunk.slots[task.seq & (CHUNK_SIZE - 1)] = task;
    chunk.live++;
    if (callerChosenId) this.#byCallerId.set(task.id, task);
    this.#size++;
  }

  /** False when the task was not live. */
  delete(task: T): boolean {
    const chunkNo = task.seq >>> CHUNK_BITS;
    const chunk = this.#chunks.get(chunkNo);
    if (chunk === undefined || chunk.slots[task.seq & (CHUNK_SIZE - 1)] !== task) return false;
    chunk.slots[task.seq & (CHUNK_SIZE - 1)] = undefined;
    if (--chunk.live === 0) this.#chunks.delete(chunkNo);
    if (this.#byCallerId.size > 0 && this.#byCallerId.get(task.id) === task) this.#byCallerId.delete(task.id);
    this.#size--;
    return true;
  }

  get(id: string): T | undefined {
    const byCaller = this.#byCallerId.get(id);
    if (byCaller !== undefined) return byCaller;
    if (!id.startsWith(this.idPrefix)) return undefined;
    const seq = Number.parseInt(id.slice(this.idPrefix.length), 36);
    if (!Number.isSafeInteger(seq)) return undefined;
    const task = this.#chunks.get(seq >>> CHUNK_BITS)?.slots[seq & (CHUNK_SIZE - 1)];
    return task !== undefined && task.id === id ? task : undefined;
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  *values(): IterableIterator<T> {
    for (const chunk of [...this.#chunks.values()]) for (const task of chunk.slots) if (task !== undefined) yield task;
  }
}
