/**
 * Attribute names outside the span's creation (which spells its attributes out: see
 * Telemetry.started). OpenTelemetry's conventions where they fit, the library's own namespace
 * for the rest.
 */
export const ATTR = {
  ERROR_TYPE: 'error.type',
  PRIORITY: 'parallel_orchestrator.task.priority',
  /** How an attempt ended: completed, failed, timeout, cancelled, preempted, claim-lost, handed-back. */
  OUTCOME: 'parallel_orchestrator.task.outcome',
  AGENT: 'parallel_orchestrator.agent.id',
  /** The more urgent task that took a preempted attempt's slot. */
  PREEMPTED_BY: 'parallel_orchestrator.task.preempted_by',
  CIRCUIT_STATE: 'parallel_orchestrator.circuit.state',
  /** The orchestrator's `nodeId`. */
  NODE: 'parallel_orchestrator.node.id',
} as const;

/** `messaging.system` of the spans. */
export const SYSTEM = 'parallel_orchestrator';
/** The name of the tracer and of the meter. */
export const INSTRUMENTATION_SCOPE = 'parallel-orchestrator';
