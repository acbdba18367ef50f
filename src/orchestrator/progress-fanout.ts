import { ProgressStream } from '../streaming/progress-stream.js';
import type { DeltaEvent, JsonPatchOperation, OrchestratorEvents, UpdateEvent } from '../types.js';
import type { Emitter } from '../util/emitter.js';
import type { Checkpoints } from './checkpoints.js';
import type { TaskRecord, TaskRun } from './task-record.js';

/**
 * Turns `ctx.progress(state)` into the task's progress stream (sequenced deltas or updates,
 * periodic snapshots) and delivers it: to the task's listeners and to `task:progress`.
 */
export class ProgressFanout {
  constructor(
    readonly streaming: { enableDeltaCompression: boolean; snapshotInterval: number },
    readonly events: Emitter<OrchestratorEvents>,
    readonly checkpoints: Checkpoints,
  ) {}

  /** Told of every update of a task running here (the cluster relay passes them to other nodes). */
  relay: ((record: TaskRecord, event: DeltaEvent | UpdateEvent) => void) | null = null;

  /** @throws TypeError when JSON cannot carry `state` (a cycle, a BigInt): the handler's call fails, the stream stays as it was. */
  update(run: TaskRun, state: unknown): void {
    if (run.finished) return;
    const record = run.record;
    const stream = this.#stream(record);
    const event = stream.update(state, run.agent.agentId, Date.now());
    if (this.checkpoints.tracking) this.checkpoints.progressed(record);
    this.relay?.(record, event);
    this.#deliver(record, stream, event, state);
  }

  /**
   * An update of a task running in another process. False when updates in between were missed:
   * the caller asks that process for a fresh state.
   */
  remote(record: TaskRecord, sequence: number, agentId: string, timestamp: number, delta: JsonPatchOperation[] | null, state: unknown): boolean {
    const stream = this.#stream(record);
    const event = stream.applyRemote(sequence, agentId, timestamp, delta, state);
    if (event === null) return sequence <= stream.sequence;
    this.#deliver(record, stream, event, event.data);
    return true;
  }

  #stream(record: TaskRecord): ProgressStream {
    const streaming = this.streaming;
    return (record.stream ??= new ProgressStream(streaming.enableDeltaCompression, streaming.snapshotInterval));
  }

  #deliver(record: TaskRecord, stream: ProgressStream, event: DeltaEvent | UpdateEvent, state: unknown): void {
    const agentId = event.metadata.agentId;
    record.updateCount = stream.sequence;
    const own = record.events;
    if (own !== null) {
      if (event.type === 'delta') {
        if (own.has('delta')) own.emit('delta', event);
      } else if (own.has('update')) own.emit('update', event);
      if (stream.snapshot?.metadata.sequence === stream.sequence && own.has('snapshot')) own.emit('snapshot', stream.snapshot);
    }
    if (this.events.has('task:progress')) {
      const sequence = stream.sequence;
      this.events.emit(
        'task:progress',
        event.type === 'delta' ? { taskId: record.id, agentId, sequence, data: state, delta: event.delta } : { taskId: record.id, agentId, sequence, data: state },
      );
    }
  }
}
