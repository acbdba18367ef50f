import { ProgressStream } from '../streaming/progress-stream.js';
import type { OrchestratorEvents } from '../types.js';
import type { Emitter } from '../util/emitter.js';
import type { Checkpoints } from './checkpoints.js';
import type { TaskRun } from './task-record.js';

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

  /** @throws TypeError when JSON cannot carry `state` (a cycle, a BigInt): the handler's call fails, the stream stays as it was. */
  update(run: TaskRun, state: unknown): void {
    if (run.finished) return;
    const record = run.record;
    const streaming = this.streaming;
    const stream = (record.stream ??= new ProgressStream(streaming.enableDeltaCompression, streaming.snapshotInterval));
    const agentId = run.agent.agentId;
    const event = stream.update(state, agentId, Date.now());
    record.updateCount = stream.sequence;
    if (this.checkpoints.tracking) this.checkpoints.progressed(record);
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
