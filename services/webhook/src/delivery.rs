//! Deliveries: one worker per endpoint, so a slow or dead endpoint holds back only itself.
//!
//! A worker reads its endpoint's waiting messages from the state, sends those that are due (at
//! most `max_in_flight_per_endpoint` requests at once, within the endpoint's rate limit), and
//! hands each outcome to the endpoint's recorder. A message stays out of the worker's sight from
//! its send until its outcome is in the state, but its request slot is free as soon as the answer
//! came, so recording never slows sending. The recorder appends every outcome waiting for it in one
//! commit (so the log is written once per batch, not once per attempt) and, once the state
//! includes it, lets the worker see the message again: delivered, failed, or due again at the
//! time the attempt recorded. The next attempt's time is therefore part of the log, and a
//! restarted service resumes every schedule where it stood; an attempt that was made but not yet
//! recorded when the process died is made again, with the same `webhook-id`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yy_eventlog::{EventLog, Expected, Follower, LogContext, NewCommit, Payload};
use yy_proto::webhook::v1 as pb;

use crate::config::WebhookSettings;
use crate::endpoints::{Command, Endpoints, envelope};
use crate::guard::{AddressPolicy, GuardedResolver, check_literal, parse_url};
use crate::metrics::Metrics;
use crate::now_ms;
use crate::sealing::Sealer;
use crate::signing::{SigningKey, signature_header};
use crate::state::{Webhooks, deliveries_aggregate};

/// The longest response excerpt recorded, in bytes.
const EXCERPT_BYTES: usize = 512;
/// Outcomes recorded in one commit at most.
const MAX_BATCH: usize = 256;
/// Outcomes waiting to be recorded, per request slot, before the worker waits for the recorder.
const UNRECORDED_PER_SLOT: usize = 8;
/// The longest `Retry-After` honoured, before scaling.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The HTTP client every delivery uses: refused addresses are filtered in its resolver, no
/// redirects, no proxies from the environment.
pub fn http_client(policy: Arc<AddressPolicy>, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("Yiwaiwai-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Starts and wakes the endpoints' workers.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    state: Follower<Webhooks>,
    endpoints: Endpoints,
    sealer: Arc<Sealer>,
    policy: Arc<AddressPolicy>,
    client: reqwest::Client,
    settings: WebhookSettings,
    metrics: Metrics,
    workers: Mutex<HashMap<(String, String), Arc<Notify>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// One attempt's outcome, on its way to the log.
struct Outcome {
    attempt: pb::DeliveryAttempted,
    gone: bool,
}

impl Dispatcher {
    pub fn new(
        log: EventLog,
        endpoints: Endpoints,
        sealer: Arc<Sealer>,
        settings: WebhookSettings,
        policy: Arc<AddressPolicy>,
        client: reqwest::Client,
        shutdown: CancellationToken,
    ) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                log,
                state: endpoints.state().clone(),
                metrics: endpoints.metrics().clone(),
                endpoints,
                sealer,
                policy,
                client,
                settings,
                workers: Mutex::default(),
                tasks: TaskTracker::new(),
                shutdown,
            }),
        }
    }

    /// Makes sure every live endpoint has a worker, and wakes them all; then keeps doing so
    /// (endpoints created or enabled, and as a safety net for missed wake-ups) until shutdown.
    pub async fn run(self) {
        loop {
            self.wake_all();
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        self.inner.tasks.close();
    }

    /// Waits until the workers and recorders stopped (after shutdown), recording what they can.
    pub async fn stopped(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    pub fn wake_all(&self) {
        let live: Vec<(String, String)> = {
            let state = self.inner.state.read();
            state
                .state
                .tenants
                .iter()
                .flat_map(|(tenant, t)| {
                    t.endpoints
                        .values()
                        .filter(|e| e.is_active())
                        .map(move |e| (tenant.clone(), e.id.clone()))
                })
                .collect()
        };
        for (tenant, endpoint) in live {
            self.wake(&tenant, &endpoint);
        }
    }

    /// Wakes the endpoint's worker, starting it if needed.
    pub fn wake(&self, tenant: &str, endpoint: &str) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let key = (tenant.to_owned(), endpoint.to_owned());
        let mut workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = workers.get(&key) {
            notify.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        workers.insert(key.clone(), notify.clone());
        let worker = Worker {
            inner: self.inner.clone(),
            tenant: key.0,
            endpoint: key.1,
            notify,
            in_flight: Arc::default(),
            sending: Arc::default(),
            bucket: None,
        };
        self.inner.tasks.spawn(worker.run());
    }
}

struct Worker {
    inner: Arc<Inner>,
    tenant: String,
    endpoint: String,
    notify: Arc<Notify>,
    /// Messages sent whose outcome the state does not include yet.
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Requests waiting for an answer.
    sending: Arc<std::sync::atomic::AtomicUsize>,
    bucket: Option<TokenBucket>,
}

/// What the worker sends in one round, and until when it may sleep.
struct Round {
    due: Vec<crate::state::Due>,
    url: String,
    headers: HashMap<String, String>,
    keys: Vec<Vec<u8>>,
    wake_at: Option<i64>,
    rate: u32,
}

impl Worker {
    async fn run(mut self) {
        let (outcomes, receiver) = mpsc::unbounded_channel();
        let recorder = Recorder {
            inner: self.inner.clone(),
            tenant: self.tenant.clone(),
            endpoint: self.endpoint.clone(),
            notify: self.notify.clone(),
            in_flight: self.in_flight.clone(),
        };
        self.inner.tasks.spawn(recorder.run(receiver));
        while let Some(round) = self.plan() {
            let mut wake_at = round.wake_at;
            if !round.due.is_empty() {
                let keys: Vec<SigningKey> = round.keys.into_iter().map(SigningKey::from_bytes).collect();
                let keys = Arc::new(keys);
                let headers = Arc::new(round.headers);
                for due in round.due {
                    if let Some(wait_ms) = self.take_token(round.rate) {
                        wake_at = Some(now_ms() + wait_ms);
                        break;
                    }
                    self.in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(due.id.clone());
                    self.sending.fetch_add(1, Ordering::AcqRel);
                    let attempt = Attempt {
                        inner: self.inner.clone(),
                        url: round.url.clone(),
                        headers: headers.clone(),
                        keys: keys.clone(),
                        due,
                    };
                    let outcomes = outcomes.clone();
                    let (sending, notify) = (self.sending.clone(), self.notify.clone());
                    self.inner.tasks.spawn(async move {
                        let outcome = attempt.send().await;
                        sending.fetch_sub(1, Ordering::AcqRel);
                        notify.notify_one();
                        // The recorder outlives every attempt it was handed (it stops when the
                        // last sender is gone), so this cannot fail.
                        let _ = outcomes.send(outcome);
                    });
                }
            }
            let sleep = match wake_at {
                Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).max(1)),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => break,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        let key = (self.tenant.clone(), self.endpoint.clone());
        self.inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// What to send now; `None` when the endpoint is gone and the worker should stop.
    fn plan(&self) -> Option<Round> {
        let state = self.inner.state.read();
        let endpoint = state.state.endpoint(&self.tenant, &self.endpoint)?;
        if !endpoint.is_active() {
            return None;
        }
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let slots = self.inner.settings.max_in_flight_per_endpoint;
        let room = slots
            .saturating_sub(self.sending.load(Ordering::Acquire))
            .min((slots * UNRECORDED_PER_SLOT).saturating_sub(in_flight.len()));
        let now = now_ms();
        let due = if room > 0 {
            endpoint.due(now, room, &in_flight)
        } else {
            Vec::new()
        };
        let wake_at = if room > 0 {
            endpoint.next_due(&in_flight).filter(|_| due.is_empty())
        } else {
            None
        };
        let keys = endpoint
            .secrets
            .iter()
            .filter(|s| s.expires_at_ms == 0 || s.expires_at_ms > now)
            .filter_map(
                |s| match self.inner.sealer.open(&self.tenant, &self.endpoint, &s.sealed) {
                    Ok(key) => Some(key.bytes().to_vec()),
                    Err(error) => {
                        tracing::error!(%error, endpoint = %self.endpoint, "a signing secret cannot be opened");
                        None
                    }
                },
            )
            .collect();
        Some(Round {
            due,
            url: endpoint.settings.url.clone(),
            headers: endpoint.settings.headers.clone().into_iter().collect(),
            keys,
            wake_at,
            rate: endpoint.settings.rate_limit_per_sec,
        })
    }

    /// Takes one token of the endpoint's rate; `Some(ms)` to wait when none is left.
    fn take_token(&mut self, rate: u32) -> Option<i64> {
        if rate == 0 {
            self.bucket = None;
            return None;
        }
        let bucket = self.bucket.get_or_insert_with(|| TokenBucket::new(rate));
        if bucket.rate != rate {
            *bucket = TokenBucket::new(rate);
        }
        bucket.take()
    }
}

/// At most `rate` attempts per second, in bursts of at most `rate`.
struct TokenBucket {
    rate: u32,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        TokenBucket {
            rate,
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> Option<i64> {
        let rate = f64::from(self.rate);
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(((1.0 - self.tokens) / rate * 1000.0).ceil() as i64)
        }
    }
}

struct Attempt {
    inner: Arc<Inner>,
    url: String,
    headers: Arc<HashMap<String, String>>,
    keys: Arc<Vec<SigningKey>>,
    due: crate::state::Due,
}

impl Attempt {
    async fn send(self) -> Outcome {
        let started_at_ms = now_ms();
        let began = Instant::now();
        let result = self.request().await;
        let latency_ms = u32::try_from(began.elapsed().as_millis()).unwrap_or(u32::MAX);
        let (status_code, excerpt, error, retry_after) = match result {
            Ok(answer) => answer,
            Err(error) => (0, String::new(), error, None),
        };
        let delivered = (200..300).contains(&status_code);
        let gone = status_code == 410;
        let next_attempt_at_ms = if delivered || gone {
            0
        } else {
            self.next_attempt(started_at_ms, retry_after)
        };
        Outcome {
            attempt: pb::DeliveryAttempted {
                message_id: self.due.id,
                attempt: self.due.attempt,
                started_at_ms,
                status_code: u32::from(status_code),
                latency_ms,
                response_excerpt: excerpt,
                error,
                delivered,
                next_attempt_at_ms,
            },
            gone,
        }
    }

    /// When to try again after a failed attempt, or 0 when the schedule is exhausted.
    fn next_attempt(&self, started_at_ms: i64, retry_after: Option<Duration>) -> i64 {
        let settings = &self.inner.settings;
        let Some(&delay) = settings.retry_schedule_secs.get(self.due.attempt as usize - 1) else {
            return 0;
        };
        let jitter = if settings.retry_jitter > 0.0 {
            rand::rng().random_range(-settings.retry_jitter..=settings.retry_jitter)
        } else {
            0.0
        };
        let mut secs = delay as f64 * (1.0 + jitter);
        if let Some(after) = retry_after {
            secs = secs.max(after.min(MAX_RETRY_AFTER).as_secs_f64());
        }
        let ms = (secs * 1000.0 / settings.time_scale).round() as i64;
        (started_at_ms + ms.max(1)).max(1)
    }

    async fn request(&self) -> Result<(u16, String, String, Option<Duration>), String> {
        let url = parse_url(&self.url)?;
        check_literal(&url, &self.inner.policy)?;
        if self.keys.is_empty() {
            // An unsigned delivery would only be refused by the receiver.
            return Err(
                "no signing secret can be opened (webhook.secret_key changed?); rotate the endpoint's secret".into(),
            );
        }
        let timestamp = now_ms() / 1000;
        let body = self.due.payload.as_bytes();
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers.iter() {
            // Validated at registration; a header that no longer parses is left out, not fatal.
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
                headers.insert(name, value);
            }
        }
        let signature = signature_header(&self.keys, &self.due.id, timestamp, body);
        let id = HeaderValue::from_str(&self.due.id).map_err(|e| e.to_string())?;
        headers.insert("webhook-id", id);
        headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&signature).map_err(|e| e.to_string())?,
        );
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let response = self
            .inner
            .client
            .post(url)
            .headers(headers)
            .body(self.due.payload.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let retry_after = if status == 429 || status == 503 {
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        } else {
            None
        };
        let mut response = response;
        let mut excerpt = Vec::new();
        // Reading stops at the excerpt's length: a huge answer costs no more than a short one.
        while excerpt.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => return Ok((status, lossy(&excerpt), describe(error), retry_after)),
            }
        }
        Ok((status, lossy(&excerpt), String::new(), retry_after))
    }
}

fn lossy(bytes: &[u8]) -> String {
    let end = bytes.len().min(EXCERPT_BYTES);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The whole chain of causes: reqwest's own message alone rarely says what went wrong.
fn describe(error: reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

struct Recorder {
    inner: Arc<Inner>,
    tenant: String,
    endpoint: String,
    notify: Arc<Notify>,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Recorder {
    async fn run(self, mut outcomes: mpsc::UnboundedReceiver<Outcome>) {
        let aggregate = deliveries_aggregate(&self.endpoint);
        while let Some(first) = outcomes.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match outcomes.try_recv() {
                    Ok(outcome) => batch.push(outcome),
                    Err(_) => break,
                }
            }
            if !self.record(&aggregate, &batch).await {
                // Shut down before it could be recorded: the attempts are made again after the
                // restart, with the same webhook-ids.
                return;
            }
            for outcome in &batch {
                self.inner.metrics.attempted(&outcome.attempt, outcome.gone);
            }
            {
                let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                for outcome in &batch {
                    in_flight.remove(&outcome.attempt.message_id);
                }
            }
            self.notify.notify_one();
            self.after(&batch).await;
        }
    }

    /// Appends the batch, retrying until it is stored or the service stops; true once the state
    /// includes it.
    async fn record(&self, aggregate: &str, batch: &[Outcome]) -> bool {
        let command_id = uuid::Uuid::now_v7().simple().to_string();
        let events: Vec<_> = batch
            .iter()
            .map(|o| {
                envelope(
                    &self.tenant,
                    "deliveries",
                    aggregate,
                    &command_id,
                    Payload::WebhookDeliveryAttempted(o.attempt.clone()),
                )
            })
            .collect();
        let mut delay = Duration::from_millis(100);
        loop {
            let commit = NewCommit {
                context: LogContext::WEBHOOK,
                tenant_id: self.tenant.clone(),
                aggregate_id: aggregate.to_owned(),
                command_id: command_id.clone(),
                events: events.clone(),
                trace: None,
            };
            match self.inner.log.append(commit, Expected::Any).await {
                Ok(appended) => {
                    self.inner.state.applied(appended.partition, appended.sequence).await;
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, endpoint = %self.endpoint, "cannot record delivery attempts; retrying");
                    tokio::select! {
                        _ = self.inner.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Disables the endpoint when it answered 410 Gone, or failed without a break for too long.
    async fn after(&self, batch: &[Outcome]) {
        let disable = if let Some(gone) = batch.iter().find(|o| o.gone) {
            Some((
                "gone",
                format!("the endpoint answered 410 Gone to message {}", gone.attempt.message_id),
            ))
        } else if batch.iter().any(|o| !o.attempt.delivered) {
            let failing_since = {
                let state = self.inner.state.read();
                state
                    .state
                    .endpoint(&self.tenant, &self.endpoint)
                    .map_or(0, |e| e.failing_since_ms)
            };
            let limit_ms = self.inner.settings.disable_after_days * 86_400_000.0 / self.inner.settings.time_scale;
            (failing_since > 0 && (now_ms() - failing_since) as f64 >= limit_ms).then(|| {
                (
                    "failing",
                    format!(
                        "every attempt failed for {} days",
                        self.inner.settings.disable_after_days
                    ),
                )
            })
        } else {
            None
        };
        if let Some((reason, detail)) = disable {
            tracing::warn!(endpoint = %self.endpoint, reason, %detail, "disabling a webhook endpoint");
            let command_id = format!("disable-{}", uuid::Uuid::now_v7().simple());
            match self
                .inner
                .endpoints
                .execute(
                    &self.tenant,
                    &self.endpoint,
                    &command_id,
                    Command::Disable { reason, detail },
                )
                .await
            {
                Ok(true) => self.inner.metrics.disabled(reason),
                Ok(false) => {}
                Err(status) => {
                    tracing::warn!(%status, endpoint = %self.endpoint, "cannot disable the endpoint; the next failure tries again")
                }
            }
        }
    }
}
