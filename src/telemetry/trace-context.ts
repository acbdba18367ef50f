import { ROOT_CONTEXT, createTraceState, isSpanContextValid, propagation, trace, type Context, type TextMapPropagator } from '@opentelemetry/api';

/**
 * A task's trace context as it travels with its row to the node that runs it: written with the
 * propagator the application registered (`propagation.setGlobalPropagator`, done by the Node SDK),
 * or, when none is, as W3C Trace Context (`traceparent`, `tracestate`), so spans stay linked
 * across nodes either way.
 */
export function injectTraceContext(context: Context): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagator().inject(context, carrier, SETTER);
  return carrier;
}

/** The submitter's context from a task's carried trace context, as the parent of its spans here. */
export function extractTraceContext(carrier: Record<string, string>): Context {
  return propagator().extract(ROOT_CONTEXT, carrier, GETTER);
}

function propagator(): TextMapPropagator<Record<string, string>> {
  // The API's default propagator is a no-op that declares no fields.
  return propagation.fields().length > 0 ? propagation : W3C_TRACE_CONTEXT;
}

const SETTER = {
  set(carrier: Record<string, string>, key: string, value: string): void {
    carrier[key] = value;
  },
};

const GETTER = {
  keys: (carrier: Record<string, string>): string[] => Object.keys(carrier),
  get: (carrier: Record<string, string>, key: string): string | undefined => (Object.hasOwn(carrier, key) ? carrier[key] : undefined),
};

const TRACEPARENT = 'traceparent';
const TRACESTATE = 'tracestate';
// version - trace id - parent span id - flags; a future version may append fields.
const TRACEPARENT_FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** W3C Trace Context (https://www.w3.org/TR/trace-context/), the span context part only. */
const W3C_TRACE_CONTEXT: TextMapPropagator<Record<string, string>> = {
  inject(context, carrier, setter) {
    const span = trace.getSpanContext(context);
    if (span === undefined || !isSpanContextValid(span)) return;
    setter.set(carrier, TRACEPARENT, `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`);
    const state = span.traceState?.serialize();
    if (state) setter.set(carrier, TRACESTATE, state);
  },
  extract(context, carrier, getter) {
    const header = getter.get(carrier, TRACEPARENT);
    const match = typeof header === 'string' ? TRACEPARENT_FORMAT.exec(header) : null;
    if (match === null || match[1] === 'ff' || (match[1] === '00' && match[5] !== undefined)) return context;
    const state = getter.get(carrier, TRACESTATE);
    const spanContext = {
      traceId: match[2]!,
      spanId: match[3]!,
      traceFlags: Number.parseInt(match[4]!, 16),
      isRemote: true,
      ...(typeof state === 'string' && state !== '' ? { traceState: createTraceState(state) } : {}),
    };
    return isSpanContextValid(spanContext) ? trace.setSpanContext(context, spanContext) : context;
  },
  fields: () => [TRACEPARENT, TRACESTATE],
};
