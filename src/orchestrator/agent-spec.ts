import { z } from 'zod';
import { InvalidAgentError } from '../errors.js';
import { roleSchema } from '../options.js';
import type { AgentHandler, AgentSpec } from '../types.js';
import { describeIssue } from '../util/validation.js';

const agentSpecSchema = z.strictObject({
  agentId: z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }),
  role: roleSchema,
  capabilities: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of strings' }),
  maxConcurrent: z.int({ error: 'must be an integer ≥ 1' }).min(1, { error: 'must be an integer ≥ 1' }).optional(),
  handler: z.custom<AgentHandler>((value) => typeof value === 'function', { error: 'must be a function (task, ctx) => result' }),
});

export interface ParsedAgent {
  agentId: string;
  role: AgentSpec['role'];
  capabilities: readonly string[];
  maxConcurrent: number;
  handler: AgentHandler;
}

/** Validates an agent definition. @throws InvalidAgentError naming the field. */
export function parseAgentSpec(spec: AgentSpec): ParsedAgent {
  if (typeof spec !== 'object' || spec === null) throw new InvalidAgentError('agent', 'must be an object');
  const checked = agentSpecSchema.safeParse(spec);
  if (!checked.success) {
    const { field, detail } = describeIssue(checked.error, spec);
    throw new InvalidAgentError(field, detail);
  }
  return {
    agentId: spec.agentId,
    role: spec.role,
    capabilities: Object.freeze([...new Set(spec.capabilities)]),
    maxConcurrent: spec.maxConcurrent ?? 1,
    handler: spec.handler,
  };
}
