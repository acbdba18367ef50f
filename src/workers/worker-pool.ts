/** One execution slot. In-process slots run async handlers on the main thread. */
export class WorkerSlot {
  busy = false;
  tasksRun = 0;
  constructor(readonly workerId: string) {}
}

export interface WorkerPoolStats {
  currentWorkers: number;
  minWorkers: number;
  maxWorkers: number;
  busy: number;
  idle: number;
  peakWorkers: number;
  workersCreated: number;
  workersRetired: number;
}

/**
 * The pool of execution slots: at most `maxWorkers` tasks run at once. Slots are created on
 * demand up to `maxWorkers`, starting with `minWorkers`; a free slot is reused LIFO so the
 * same few stay warm.
 */
export class WorkerPool {
  readonly #free: WorkerSlot[] = [];
  #count = 0;
  #busy = 0;
  #peak = 0;
  #created = 0;
  #retired = 0;

  constructor(readonly minWorkers: number, readonly maxWorkers: number) {
    for (let i = 0; i < minWorkers; i++) this.#free.push(this.#create());
  }

  /** True while another task may start. */
  get hasCapacity(): boolean {
    return this.#busy < this.maxWorkers;
  }

  get busy(): number {
    return this.#busy;
  }

  acquire(): WorkerSlot {
    const slot = this.#free.pop() ?? this.#create();
    slot.busy = true;
    this.#busy++;
    return slot;
  }

  release(slot: WorkerSlot): void {
    slot.busy = false;
    slot.tasksRun++;
    this.#busy--;
    this.#free.push(slot);
  }

  stats(): WorkerPoolStats {
    return {
      currentWorkers: this.#count,
      minWorkers: this.minWorkers,
      maxWorkers: this.maxWorkers,
      busy: this.#busy,
      idle: this.#count - this.#busy,
      peakWorkers: this.#peak,
      workersCreated: this.#created,
      workersRetired: this.#retired,
    };
  }

  #create(): WorkerSlot {
    this.#created++;
    this.#count++;
    if (this.#count > this.#peak) this.#peak = this.#count;
    return new WorkerSlot(`worker-${this.#created}`);
  }
}
