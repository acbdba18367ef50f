import type { z } from 'zod';

/** The first problem zod found, as a dotted field path and a sentence naming the value received. */
export function describeIssue(error: z.ZodError, input: unknown, prefix = ''): { field: string; detail: string } {
  const issue = error.issues[0]!;
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const field = [prefix, ...path, issue.keys[0]].filter(Boolean).join('.');
    return { field, detail: 'is not a known option (check its spelling)' };
  }
  const field = [prefix, ...path].filter(Boolean).join('.') || prefix || 'value';
  let value: unknown = input;
  for (const key of path) value = value == null ? undefined : (value as Record<string, unknown>)[key];
  return { field, detail: `${ownMessage(issue)} (received ${show(value)})` };
}

/** Our wording for the checks that carry zod's default message (a nested options object given as null, say). */
function ownMessage(issue: z.core.$ZodIssue): string {
  if (!issue.message.startsWith('Invalid input')) return issue.message;
  if (issue.code === 'invalid_type') return issue.expected === 'object' ? 'must be an object' : `must be of type ${issue.expected}`;
  return 'is not valid';
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null || typeof value !== 'object') return String(value);
  return 'an object';
}
