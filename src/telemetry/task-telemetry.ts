import type { Context, Span } from '@opentelemetry/api';

/**
 * What telemetry keeps of one task between its transitions, on `TaskRecord.telemetry`. Made only
 * when there is something to keep (metrics are recorded, or the task was submitted inside a
 * span), and dropped when the task ends.
 */
export class TaskTelemetry {
  /** When the task last became ready to run (engine clock, ms); NaN when this process did not see it queued. */
  readyAt = Number.NaN;
  /** The span of the attempt running now. */
  span: Span | null = null;

  constructor(
    /** The submitter's context, parent of every attempt's span; null: the spans are roots. */
    readonly parent: Context | null,
  ) {}
}
