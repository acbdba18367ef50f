import type { Context, Span } from '@opentelemetry/api';

/**
 * What tracing keeps of one task between its transitions, on `TaskRecord.telemetry`. Made only
 * when there is something to keep (a span, or the submitter's context), and dropped when the
 * task ends. (The wait-time metric needs only `TaskRecord.readyAt`: no object per task.)
 */
export class TaskTelemetry {
  /** The span of the attempt running now. */
  span: Span | null = null;

  constructor(
    /** The submitter's context, parent of every attempt's span; null: the spans are roots. */
    readonly parent: Context | null,
  ) {}
}
