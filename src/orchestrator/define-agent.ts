import type { AgentSpec, TypedAgent, TypedTaskSpec } from '../types.js';
import { parseAgentSpec } from './agent-spec.js';

/**
 * Types an agent once: its handler's payload (`P`), result (`R`) and progress state (`S`) flow to
 * the tasks made with `agent.task(...)`, so `submit()` returns a `TaskObservable<R, S>` and
 * `ctx.progress` takes an `S`. Validation happens at `registerAgent`.
 *
 * @example
 * const summarizer = defineAgent({
 *   agentId: 'summarizer',
 *   role: AgentRole.ANALYZER,
 *   capabilities: ['summarize'],
 *   handler: async (task: Task<{ text: string }>, ctx: TaskContext<{ done: number }>) => {
 *     ctx.progress({ done: 1 });
 *     return { summary: task.payload.text.slice(0, 20) };
 *   },
 * });
 * orchestrator.registerAgent(summarizer);
 * const { result } = await orchestrator.submit(summarizer.task({ type: 'summarize', payload: { text } })).result();
 * result.summary; // string
 */
export function defineAgent<P, R, S = unknown>(spec: AgentSpec<P, R, S>): TypedAgent<P, R, S> {
  // Checked here so a bad definition fails where it is written, not at registerAgent.
  parseAgentSpec(spec as AgentSpec);
  const agent = { ...spec } as TypedAgent<P, R, S>;
  // Not enumerable: registerAgent sees only the agent's own fields.
  Object.defineProperty(agent, 'task', {
    value: (task: Parameters<TypedAgent<P, R, S>['task']>[0]): TypedTaskSpec<P, R, S> => ({ capabilities: spec.capabilities, ...task }),
    enumerable: false,
  });
  return agent;
}
