use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A W3C trace context (`traceparent`, and `tracestate` when present), carried in NATS message
/// headers so one trace covers request → command → event → consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// The header names, as W3C Trace Context defines them.
    pub const TRACEPARENT: &'static str = "traceparent";
    /// See [`TraceContext::TRACEPARENT`].
    pub const TRACESTATE: &'static str = "tracestate";

    /// Parses a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`); `None` when it is malformed
    /// or names the all-zero (invalid) trace or span.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let [version, trace_id, span_id, flags] = parts.as_slice() else {
            return None;
        };
        let hex =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        let valid = *version == "00"
            && hex(trace_id, 32)
            && hex(span_id, 16)
            && hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && span_id.bytes().any(|b| b != b'0');
        valid.then(|| TraceContext {
            traceparent: traceparent.trim().to_owned(),
            tracestate: tracestate.map(str::to_owned).filter(|s| !s.is_empty()),
        })
    }

    /// The trace context of the current `tracing` span, when an OpenTelemetry layer is installed
    /// and the span is sampled into a valid trace.
    pub fn current() -> Option<Self> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let tracestate = sc.trace_state().header();
        Some(TraceContext {
            traceparent: format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()),
            tracestate: (!tracestate.is_empty()).then_some(tracestate),
        })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` header value, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// An OpenTelemetry context whose remote parent is this trace context; set it as the parent of
    /// a consumer's span (`span.set_parent(ctx)`) to continue the trace.
    pub fn otel_context(&self) -> opentelemetry::Context {
        let parse = || -> Option<SpanContext> {
            let trace_id = TraceId::from_hex(&self.traceparent[3..35]).ok()?;
            let span_id = SpanId::from_hex(&self.traceparent[36..52]).ok()?;
            let flags = u8::from_str_radix(&self.traceparent[53..55], 16).ok()?;
            let state = self
                .tracestate
                .as_deref()
                .and_then(|s| s.parse::<TraceState>().ok())
                .unwrap_or_default();
            Some(SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state))
        };
        match parse() {
            Some(sc) => opentelemetry::Context::new().with_remote_span_context(sc),
            None => opentelemetry::Context::new(),
        }
    }

    pub(crate) fn from_headers(headers: Option<&async_nats::HeaderMap>) -> Option<Self> {
        let headers = headers?;
        let parent = headers.get(Self::TRACEPARENT)?.as_str();
        Self::parse(parent, headers.get(Self::TRACESTATE).map(|v| v.as_str()))
    }

    pub(crate) fn write_headers(&self, headers: &mut async_nats::HeaderMap) {
        headers.insert(Self::TRACEPARENT, self.traceparent.as_str());
        if let Some(state) = &self.tracestate {
            headers.insert(Self::TRACESTATE, state.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_valid_and_rejects_malformed() {
        let tc = TraceContext::parse(VALID, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(tc.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tc.tracestate(), Some("congo=t61rcWkgMzE"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad}");
        }
    }

    #[test]
    fn otel_context_round_trips() {
        let tc = TraceContext::parse(VALID, None).expect("valid");
        let cx = tc.otel_context();
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_remote());
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
    }
}
