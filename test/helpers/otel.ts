// An OpenTelemetry SDK for tests: spans kept in memory, W3C propagation and
// the AsyncLocalStorage context manager, registered globally as an app's
// start-up would (NodeSDK does the same three things).
import { type Attributes, context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'

/** SpanRecord is a finished span as plain data, to compare or send over IPC. */
export interface SpanRecord {
  name: string
  kind: number
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  attributes: Attributes
  events: Array<{ name: string; attributes: Attributes | undefined }>
  status: { code: number; message?: string | undefined }
}

/** registerTracing registers the SDK globally and returns the exporter that keeps the spans. */
export function registerTracing(): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(provider)
  return exporter
}

/** records turns the exporter's finished spans into SpanRecords, oldest first. */
export function records(exporter: InMemorySpanExporter): SpanRecord[] {
  return exporter.getFinishedSpans().map(toRecord)
}

function toRecord(span: ReadableSpan): SpanRecord {
  const { traceId, spanId } = span.spanContext()
  return {
    name: span.name,
    kind: span.kind,
    traceId,
    spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    attributes: { ...span.attributes },
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes })),
    status: { code: span.status.code, message: span.status.message },
  }
}

/** mentions says whether `text` appears anywhere in a span: name, attributes, events or status. */
export function mentions(span: SpanRecord, text: string): boolean {
  return JSON.stringify([span.name, span.attributes, span.events, span.status]).includes(text)
}
