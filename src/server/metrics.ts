import type { OrchestratorStats } from '../index.js';

/** What /metrics reports besides the orchestrator's stats. */
export interface ServerFigures {
  eventStreams: number;
}

type Labels = Record<string, string>;

/**
 * `getStats()` in the Prometheus text exposition format (version 0.0.4): counters since
 * `start()`, queue depth per priority, running tasks, workers, per-agent load and circuit state
 * (one series per state, 1 for the current one), and on PostgreSQL the cluster's nodes.
 */
export function prometheusText(stats: OrchestratorStats, server: ServerFigures): string {
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [Labels, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labelText(labels)} ${number(value)}`);
  };
  const one = (value: number): [Labels, number][] => [[{}, value]];

  metric('porch_tasks_submitted_total', 'counter', 'Tasks accepted (requeued dead letters included).', one(stats.totalSubmitted));
  metric('porch_tasks_completed_total', 'counter', 'Tasks that completed.', one(stats.totalCompleted));
  metric('porch_tasks_failed_total', 'counter', 'Tasks that failed for good (dead-lettered).', one(stats.totalFailed));
  metric('porch_tasks_cancelled_total', 'counter', 'Tasks cancelled.', one(stats.totalCancelled));
  metric('porch_task_timeouts_total', 'counter', 'Attempts that timed out, retried or not.', one(stats.totalTimeouts));
  metric('porch_task_retries_total', 'counter', 'Retries scheduled.', one(stats.totalRetries));
  metric('porch_checkpoints_total', 'counter', 'Checkpoints saved.', one(stats.checkpoints));
  metric('porch_tasks_recovered_total', 'counter', 'Tasks queued again at start because a previous process left them unfinished.', one(stats.recovered));
  metric('porch_routing_decisions_total', 'counter', 'Routing decisions made.', one(stats.agentRouter.routingDecisions));
  metric('porch_uptime_seconds', 'gauge', 'Seconds since start().', one(stats.uptime / 1000));
  metric('porch_task_duration_average_seconds', 'gauge', 'Mean run time of completed tasks.', one(stats.averageDuration / 1000));
  metric('porch_success_ratio', 'gauge', 'completed / (completed + failed); 1 before anything finished.', one(stats.successRate));
  metric('porch_tasks_running', 'gauge', 'Tasks running now.', one(stats.running));
  metric(
    'porch_queue_depth',
    'gauge',
    'Queued tasks per priority level.',
    Object.entries(stats.taskQueue.byPriority).map(([priority, n]) => [{ priority }, n]),
  );
  metric('porch_queue_retrying', 'gauge', 'Tasks waiting out a retry delay.', one(stats.taskQueue.retrying));
  metric('porch_dead_letters', 'gauge', 'Dead letters held.', one(stats.taskQueue.deadLetters));
  const pool = stats.workerPool;
  metric('porch_workers', 'gauge', 'Workers by state.', [[{ state: 'busy' }, pool.busy], [{ state: 'idle' }, pool.idle]]);
  metric('porch_workers_max', 'gauge', 'workerPool.maxWorkers.', one(pool.maxWorkers));
  metric('porch_worker_threads', 'gauge', 'Worker threads now.', one(pool.threads));
  metric('porch_agents', 'gauge', 'Registered agents.', one(stats.agentRouter.agents));
  const agents = stats.agentRouter.agentStats;
  const agentLabels = (a: (typeof agents)[number]) => ({ agent: a.agentId, role: a.role });
  metric('porch_agent_active', 'gauge', 'Tasks an agent runs now.', agents.map((a) => [agentLabels(a), a.active]));
  metric('porch_agent_max_concurrent', 'gauge', "An agent's maxConcurrent.", agents.map((a) => [agentLabels(a), a.maxConcurrent]));
  metric('porch_agent_completed_total', 'counter', 'Attempts an agent completed.', agents.map((a) => [agentLabels(a), a.completed]));
  metric('porch_agent_failed_total', 'counter', 'Attempts that failed on an agent.', agents.map((a) => [agentLabels(a), a.failed]));
  metric(
    'porch_agent_circuit_state',
    'gauge',
    "An agent's circuit breaker: 1 for its current state, 0 for the others.",
    agents.flatMap((a) => CIRCUIT_STATES.map((state): [Labels, number] => [{ ...agentLabels(a), state }, a.circuitState === state ? 1 : 0])),
  );
  if (stats.cluster !== undefined) {
    const nodes = stats.cluster.nodes;
    metric('porch_cluster_nodes', 'gauge', 'Nodes of the cluster (PostgreSQL store).', one(nodes.length));
    metric('porch_cluster_tasks', 'gauge', 'Tasks of the whole cluster by status (PostgreSQL store).', [
      [{ status: 'queued' }, stats.cluster.queued],
      [{ status: 'running' }, stats.cluster.running],
    ]);
    metric('porch_cluster_node_running', 'gauge', 'Tasks running on a node.', nodes.map((n) => [{ node: n.nodeId, host: n.host }, n.running]));
  }
  metric('porch_event_streams', 'gauge', 'Server-Sent Events streams open on this server.', one(server.eventStreams));
  return `${out.join('\n')}\n`;
}

const CIRCUIT_STATES = ['closed', 'open', 'half-open'] as const;

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}="${escapeLabel(value)}"`).join(',')}}`;
}

// The exposition format escapes backslash, double quote and line feed in label values.
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function number(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
