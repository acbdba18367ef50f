import type { WorkSource } from '../queue/work-source.js';
import type { AgentDirectory } from '../routing/agent-directory.js';
import type { WorkerPool } from '../workers/worker-pool.js';
import type { Executor } from './executor.js';
import { Preemptor, type PreemptionOptions } from './preemption.js';
import type { TaskRecord, TaskRun } from './task-record.js';

/**
 * Starts waiting tasks while the pool has room: claims the best task an agent can take now,
 * picks that agent, takes a worker for it, and hands the three to the executor. Event-driven:
 * `schedule()` runs a pass on a microtask (after submits, never inside `submit()`), and a run
 * that ends runs one at once; there is no polling timer.
 */
export class Dispatcher {
  #enabled = false;
  #scheduled = false;
  #pumping = false;
  #again = false;

  readonly #preemptor: Preemptor;

  constructor(
    readonly source: WorkSource<TaskRecord>,
    readonly directory: AgentDirectory,
    readonly pool: WorkerPool<TaskRun>,
    readonly executor: () => Executor,
    preemption: PreemptionOptions,
  ) {
    this.#preemptor = new Preemptor(preemption, {
      waitingHeads: () => source.waitingHeads(),
      canServe: (head) => directory.canServe(head.lane.key),
      runs: () => this.executor().runs(),
      get preemptibleRunning() {
        return executor().preemptibleRunning;
      },
      preempt: (run, by, graceMs) => this.executor().preempt(run, by, graceMs),
    });
  }

  /** Dispatch runs from now on (start()), or no more (shutdown). */
  set enabled(enabled: boolean) {
    this.#enabled = enabled;
  }

  schedule(): void {
    if (this.#scheduled || !this.#enabled) return;
    this.#scheduled = true;
    queueMicrotask(this.#scheduledPass);
  }

  readonly #scheduledPass = (): void => {
    this.#scheduled = false;
    this.pump();
  };

  pump(): void {
    if (!this.#enabled) return;
    // A handler may submit, cancel or settle synchronously while we start it: run once more then.
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    const { source, directory, pool } = this;
    const executor = this.executor();
    do {
      this.#again = false;
      while (pool.anyAvailable) {
        const record = source.claim(directory, pool.room);
        if (record === null) break;
        // The source only hands out tasks the directory said it can serve now; but a thread may
        // pass its look-ahead time between that question, this one and the next: the task waits.
        const agent = directory.select(record.lane.key, record.type, record.preferredRole);
        const worker = agent === null ? null : agent.execution.kind === 'inline' ? pool.acquireInline() : pool.acquireThread();
        if (agent === null || worker === null) {
          source.returnToFront(record);
          break;
        }
        executor.start(record, agent, worker);
      }
      // Tasks still wait: one that no agent has room for may take a less urgent task's slot.
      if (executor.preemptibleRunning > 0 && source.size > 0) this.#preemptor.check();
    } while (this.#again);
    this.#pumping = false;
  }
}
