import { isOrchestratorError } from '../errors.js';

/** The body of every error response: `{ error: { code, message, field? } }`. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** An error that becomes an HTTP response with its status; thrown by the routes. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

// Statuses of the library's error codes (the rest are 500).
const STATUS_OF_CODE: Record<string, number> = {
  INVALID_TASK: 400,
  INVALID_ARGUMENT: 400,
  INVALID_OPTIONS: 400,
  INVALID_AGENT: 400,
  TASK_NOT_FOUND: 404,
  AGENT_NOT_FOUND: 404,
  DUPLICATE_TASK: 409,
  DUPLICATE_AGENT: 409,
  QUEUE_FULL: 503,
  SHUTDOWN: 503,
};

/**
 * The status and body for anything a route threw. Library errors keep their code, message and
 * field; anything else is a 500 whose message says nothing of the inside (no stack, no path).
 */
export function errorResponse(error: unknown): { status: number; body: ErrorBody; headers: Record<string, string>; internal: boolean } {
  if (error instanceof HttpError) {
    return { status: error.status, body: body(error.code, error.message, error.field), headers: error.headers, internal: false };
  }
  if (isOrchestratorError(error)) {
    const status = STATUS_OF_CODE[error.code];
    if (status !== undefined) {
      const field = (error as { field?: unknown }).field;
      const headers: Record<string, string> = status === 503 ? { 'retry-after': '1' } : {};
      return { status, body: body(error.code, error.message, typeof field === 'string' ? field : undefined), headers, internal: false };
    }
  }
  return { status: 500, body: body('INTERNAL', 'internal error (see the server log)'), headers: {}, internal: true };
}

function body(code: string, message: string, field?: string): ErrorBody {
  return { error: field === undefined ? { code, message } : { code, message, field } };
}
