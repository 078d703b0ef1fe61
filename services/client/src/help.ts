/** The --help texts. Exit codes are listed here and in the README; keep the two in step. */

export const USAGE = `Usage: taskctl <command> [options]

Commands:
  submit <type>     submit a task (echo, sleep, checksum, flaky, fail, or one of the deployment's TASK_TYPES)
  submit-batch <file>  submit the tasks of a JSON Lines file (- for standard input), many per call
  get <id>          show a task
  graph <id>        a task, what it waits for, and the tree after it: its child tasks and the tasks that wait for it
  watch <id...>     follow tasks live until they finish
  cancel <id>|--all  cancel a task that has not finished, or every one matching a filter
  promote <id>      run a delayed task now instead of at its time
  result <id>       fetch a finished task's result from the result store
  demo              submit a mix of tasks and watch them flow through the pipeline
  health            check the gateway's gRPC health service
  stats             queue depths, rates, dead letters and tasks by state (operators)
  workers           the live workers and the tasks each runs now; quiet|resume one (operators)
  concurrency <key> a concurrency key's tasks: those in the pipeline and those waiting for a place (operators)
  fairness <type>   a task type's fairness window: its tasks, and the keys waiting for their turn (operators)
  ls                list and search tasks, newest first
  history <id>      a task's audit events, stage by stage
  logs <id>         what a task's handler logged (ctx.log); -f follows it until the task finishes
  dlq ls            list dead letters
  dlq replay <id...>|--all   send dead-lettered tasks through the pipeline again
  dlq discard <id...>|--all  remove dead letters that will not be replayed
  requeue <id...>|--all-stalled   send stalled tasks (unfinished, their message lost) through the pipeline again
  pause <priority>  stop the workers from starting tasks of a priority (high, medium, low)
  resume <priority> let the workers take tasks of that priority again
  schedule add|ls|rm|pause|resume|run  recurring tasks: submit a task at every time a cron expression (or
                   @every 90m) names
  limits ls|set|clear|pause|resume  fleet-wide limits on a task type (concurrency, start rate, pause), changed
                   without a restart

Run "taskctl <command> --help" for a command's options.`;

const GLOBALS = `Global options:
  --addr URL        gateway address (default $TASKCTL_ADDR or http://127.0.0.1:50051)
  --api-key KEY     sent as "authorization: Bearer KEY" (default $TASKCTL_API_KEY)
  --tls-ca-file F   with an https:// address: trust this CA's certificate (PEM; default $TASKCTL_TLS_CA_FILE)
  --tls-cert-file F, --tls-key-file F  a client certificate and its key to present (PEM; $TASKCTL_TLS_CERT_FILE,
                    $TASKCTL_TLS_KEY_FILE)
  --json            machine-readable output (one JSON object per line for streams)
  -h, --help        this help`;

const EXIT_CODES = `Exit codes:
  0  ok
  1  the task ended FAILED or CANCELLED (watch, submit --watch; demo: a task did not end as expected;
     dlq replay, dlq discard: a dead letter was not replayed or discarded; requeue: a task was not requeued;
     schedule add: the id is taken, without --replace)
  2  usage error (bad flag or value, malformed --payload), or the gateway rejected the request as invalid
  3  not found
  4  server unavailable (cannot connect, UNAVAILABLE, no answer in time; dlq replay, dlq discard, requeue: Redis or NATS
     stopped answering during the call, and the rows marked unavailable were not done: call again for them)
  5  other server error`;

function page(usage: string, description: string, options = ""): string {
  return [usage, description, options, GLOBALS, EXIT_CODES].filter(Boolean).join("\n\n");
}

export const HELP = {
  taskctl: [USAGE, GLOBALS, EXIT_CODES].join("\n\n"),
  "submit-batch": page(
    "Usage: taskctl submit-batch <file|-> [--batch-size N] [--retries N]",
    `Submits every task of a JSON Lines file (- reads standard input), --batch-size at a time in one SubmitTasks
call each. A line is a SubmitTaskRequest in protobuf's JSON form, e.g.
  {"type":"sleep","payload":{"ms":200},"priority":"PRIORITY_HIGH","idempotencyKey":"order-17","delay":"30s"}
(fields: type, payload, priority, idempotencyKey, metadata, runAt or delay, timeout, maxAttempts, retryBackoff
{delay, multiplier, maxDelay, jitter}, expiresAfter, succeededRetention, heartbeatTimeout, dependsOn, dependencyPolicy,
concurrencyKey and concurrencyLimit, fairnessKey and fairnessWeight, dependsOnBatchItems). A line's
dependsOnBatchItems are earlier tasks of the file it waits for, by their place (from 0, blank lines aside), e.g.
  {"type":"load","dependsOnBatchItems":[0,1]}
sent as places in the call or, once an earlier call accepted them, as ids; a task naming a refused one is refused
and not sent. Every line is read and checked before anything is sent: a malformed one stops the command, naming
its line.
Prints one line per task, in the file's order: its id, or "error CODE: message" for a task the gateway refused
(--json: {line, taskId, deduplicated} or {line, error: {code, message}}), then a count on stderr. A task the gateway
answered UNAVAILABLE is sent again after 0.25, 0.5, 1, 2 s with the same idempotency key (one is made for a line
without), so a retry never creates a second task. A call refused by the rate limit is sent again once the gateway's
pushback (grpc-retry-pushback-ms) has passed. Exit code: 0 when every task was accepted, else that of the first
refused line (2 invalid, 4 unavailable, 5 other).`,
    `Options:
  --batch-size N          tasks per call (default 100, at most the gateway's GATEWAY_MAX_BATCH_TASKS, 500 by
                          default; the rate limit counts each task)
  --retries N             retries of the tasks answered UNAVAILABLE or rate limited (default 4, 0 to 20)`,
  ),
  submit: page(
    "Usage: taskctl submit <type> [--payload JSON] [--priority high|medium|low] [--idempotency-key K [--key-reuse after-finished|replace-waiting]] [--meta k=v ...] [--delay D | --at T] [--attempt-timeout D] [--heartbeat-timeout D] [--max-attempts N] [--retry-delay D [--retry-multiplier X] [--retry-max-delay D] [--retry-jitter F]] [--expires-after D] [--succeeded-retention D] [--depends-on ID,... [--run-when succeeded|finished]] [--concurrency-key KEY --concurrency-limit N] [--fairness-key KEY [--fairness-weight N]] [--watch] [--retries N]",
    "Submits a task and prints its id (--json: {taskId, deduplicated}). A submission the gateway cannot take\n(UNAVAILABLE, connection refused) is retried after 0.25, 0.5, 1, 2 s with the same idempotency key (yours,\nor one made for this run), so a retry never creates a second task; one refused by the rate limit, after the\ngateway's pushback.",
    `Options:
  --payload JSON          the task's payload, a JSON object, e.g. '{"ms":800}'
  --priority P            high, medium (default) or low
  --idempotency-key K     a repeated key returns the first task's id instead of creating another
  --key-reuse after-finished  with --idempotency-key: once the key's task has finished, make a new task (the key
                          names it from then on): at most one unfinished task per key (default never: a day)
  --key-reuse replace-waiting  that, and while the key's task still waits for its time (--delay/--at), replace its
                          payload, options and time with this one's: a burst runs once, as the last asks (a debounce)
  --meta k=v              metadata, repeatable
  --delay D               a delayed task: it waits PENDING (cancellable) and runs D later: 30s, 15m, 2h, 1d
  --at T                  a delayed task that runs at T, an ISO time such as 2026-01-31T12:00:00Z
  --attempt-timeout D     the handler's time limit per attempt (500ms, 30s, 15m, 2h; default the worker's, 60 s)
  --heartbeat-timeout D   abort an attempt whose handler reports no progress for D (500ms, 30s, 15m, 2h; up to 24h;
                          default its type's, else none): found stuck in minutes, not at its attempt timeout
  --max-attempts N        attempts at most (most: 5; default: its type's, else 5); 1 runs it at most once, never retried
  --retry-delay D         the task's own wait after a failed attempt (0s, 500ms, 30s, 15m, up to 1h); default the
                          pipeline's 1 s, 5 s, 15 s, 30 s
  --retry-multiplier X    each further wait is the previous one times X (1 to 100; default 1, the same wait; 2 doubles)
  --retry-max-delay D     the longest wait (default 1h)
  --retry-jitter F        shorten each wait by a random part of up to F of it (0 to 1, e.g. 0.2; default 0)
  --expires-after D       not run if no attempt has started D after it was due (30s, 15m, 2h, 1d; up to 7d): it
                          ends CANCELLED, "expired" (a retry due later is not started either)
  --succeeded-retention D keep the task only D once it SUCCEEDED (60s to 90d; default the deployment's,
                          TASK_SUCCEEDED_RETENTION_SECONDS or TASK_RETENTION_SECONDS); then get answers not found
  --depends-on ID,...     wait PENDING until these tasks SUCCEEDED (up to 20; repeatable); if one FAILED or was
                          CANCELLED, this one is CANCELLED too, naming it
  --run-when finished     with --depends-on: run once they all finished, whatever the outcome (default: succeeded)
  --concurrency-key KEY   with --concurrency-limit: at most N tasks of KEY in the pipeline at once (one tenant's,
  --concurrency-limit N   one account's); the others wait PENDING, oldest first. KEY: 1 to 128 letters, digits or
                          _ . : @ / = + -; N: 1 to 1000
  --fairness-key KEY      its tenant's fair share of its type: at most the gateway's GATEWAY_FAIRNESS_WINDOW (32)
                          tasks of the type with a key are in the pipeline at once; the others wait PENDING, and
                          each freed place goes to the key whose turn it is, so one key's backlog does not hold up
                          the others' tasks (taskctl fairness <type> shows the queue). KEY: as --concurrency-key
  --fairness-weight N     with --fairness-key: the key is served N times as often as a key of weight 1 while both
                          wait (1 to 1000; default 1)
  --watch                 then follow the task until it finishes (exit 1 if it FAILED or was CANCELLED)
  --retries N             retries of an UNAVAILABLE or rate-limited submission, 0 to 20 (default 4; 0: fail at once)`,
  ),
  get: page("Usage: taskctl get <id>", "Shows a task: type, priority, status, payload, result."),
  graph: page(
    "Usage: taskctl graph <id> [--depth N]",
    `Shows a task with its parent and what it waits for (depends_on, with their states) and, as a tree, the child
tasks its handler submitted (marked "child") and the tasks that wait for it, then theirs, and so on, each with its
state (PENDING ones with how many tasks they still wait for). A task reached twice is listed once and then marked
(above); a task lists at most 100 of its children and 100 of its dependents (the rest counted). One GetTask per
task, at most 200. --json: {taskId, depth, tasks: [{taskId, type, state, dependsOn, dependents, dependentsTotal,
parentTaskId, children, childrenTotal}]}.`,
    `Options:
  --depth N               levels of children and dependents to show (default 5, at most 20)`,
  ),
  watch: page(
    "Usage: taskctl watch <id...>",
    "Follows tasks live, one progress bar per task (redrawn in place on a terminal, one line per update otherwise),\nuntil every task has finished.",
  ),
  cancel: page(
    "Usage: taskctl cancel <id> [--reason R] [--children]\n       taskctl cancel --all [--state S] [--type T] [--priority P] [--since T] [--until T] [--query Q] [--parent ID] [--reason R] [--dry-run]",
    "Cancels a task that has not finished; a running handler is aborted. With --children, also the child tasks its\nhandler submitted, theirs, and so on (up to 1,000; whatever the task's own state): prints how many. With --all (operators): every unfinished task\nmatching the filter (as taskctl ls reads it), newest first, 500 per call until none is left; prints one row per\ntask (--json: one response per call). Exit code 1 when a task had finished meanwhile, 4 when Redis or NATS stopped\nanswering (the rows marked unavailable were not done: run it again). With --dry-run, nothing is cancelled: the rows\nsay which tasks would be (would_cancel) and the count.",
    `Options:
  --reason R        recorded with the cancellation
  --children        also cancel its child tasks (ctx.submitTask), theirs, and so on
  --all             every unfinished task matching the filter below (at least one of them; --until now: all)
  --dry-run         with --all: list what would be cancelled, cancel nothing
  --state, --type, --priority, --since, --until, --query, --parent   as for taskctl ls`,
  ),
  promote: page(
    "Usage: taskctl promote <id>",
    "Runs a delayed task (submitted with --delay or --at) now: it becomes due at once and the gateway queues it at\nonce. Prints when it was due before. Exit code 1 when the task is not waiting for its time (not delayed, released\nalready, finished or cancelled), 3 when there is no such task.",
  ),
  result: page(
    "Usage: taskctl result <id>",
    "Fetches a finished task's result: GET $RESULT_STORE_URL/results/<id> (default http://127.0.0.1:8082).",
  ),
  demo: page(
    "Usage: taskctl demo [--count N] [--timeout SECONDS]",
    "Submits a mix of echo, sleep, checksum, flaky and one fail task across priorities, shows them flowing to\ncompletion and prints a summary. Exits 0 when every task ended as expected (the fail task FAILED, the rest SUCCEEDED).\nA submission the gateway cannot take (UNAVAILABLE) is retried as submit retries, without creating a second task.",
    "Options:\n  --count N         how many tasks (default 12)\n  --timeout S       give up after S seconds (default 120)",
  ),
  health: page("Usage: taskctl health", "Checks the gateway's grpc.health.v1 service (exit 4 when not SERVING)."),
  stats: page(
    "Usage: taskctl stats",
    "Shows each JetStream consumer's backlog (pending = waiting, in flight = delivered, not yet acked), the age of its\noldest unacked message and its rate, the dead-letter count, and tasks by state.",
  ),
  workers: page(
    "Usage: taskctl workers [ls]\n       taskctl workers quiet|resume <worker id | host>",
    "ls (the default) lists the live worker processes (WORKER_ID, host:pid by default): when each started and last\nreported, its tasks running out of WORKER_CONCURRENCY, the deliveries it holds buffered, the priorities it keeps\npaused and whether it is quiet; then every task running, longest first, with its attempt and how long it has run.\nA worker reports every WORKER_REPORT_INTERVAL_MS (5 s): one that stopped leaves the list at once, one that died\nwithin three intervals. quiet: that worker takes no new tasks from its next poll (WORKER_PAUSE_POLL_MS) and hands\nback what it holds buffered, which the other workers take at once (not counted as attempts); its running tasks\nfinish. Before maintenance of its machine, or to stop it taking work without killing what it runs. It stays quiet\nuntil resume or until it restarts.",
  ),
  concurrency: page(
    "Usage: taskctl concurrency <key> [--owner CALLER]",
    `Shows one concurrency key's tasks (submit --concurrency-key): how many are in the pipeline (released into it, not
finished: they hold the key's places) and how many wait PENDING for a place, then their ids, those waiting in the
order they get one (highest priority first, then oldest first); the first 100 of each, "… and N more" for the rest.
The limit shown is the one the next waiting task was submitted with: it is admitted once fewer of the key's tasks
than that are in the pipeline.
For why a tenant's tasks stay PENDING, and whose tasks hold its places (--json: {running, runningTotal, waiting,
waitingTotal, nextLimit}, zeros and empty lists left out).`,
    `Options:
  --owner CALLER    whose key, with a gateway run with GATEWAY_TASK_ISOLATION=caller (each application's keys
                    are its own): the caller its tasks were submitted by (its API key's caller name or JWT sub);
                    required there, refused otherwise (exit 2)`,
  ),
  fairness: page(
    "Usage: taskctl fairness <type>",
    `Shows one task type's fair share (submit --fairness-key): how many of its window's places are taken (tasks of
the type with a fairness key released into the pipeline, not finished; the window is the gateway's for the type,
GATEWAY_FAIRNESS_WINDOWS or GATEWAY_FAIRNESS_WINDOW, 32 by default) and how many keys have tasks waiting PENDING for
their turn; then the ids of the tasks in the window, and the keys in the order they are served, each with its tasks
waiting, the virtual start of its next task (the lowest goes first; each task let in moves its key's on by 1 / its
weight, so a key's backlog does not hold up the others) and that task's weight; the first 100 of each, "… and N
more" for the rest. With GATEWAY_TASK_ISOLATION=caller a key is shown as caller:<submitter>:<key>. For why a
tenant's tasks stay PENDING, and whose turn it is (--json: {window, running, runningTotal, keys: [{key,
waitingTotal, nextStart, nextWeight}], keysTotal, clock}, zeros and empty lists left out).`,
  ),
  ls: page(
    "Usage: taskctl ls [--state S] [--type T] [--priority P] [--since T] [--until T] [--query Q] [--stalled-for D] [--stalled] [--parent ID] [--limit N] [--page-token TOKEN]",
    "Lists tasks newest first (with --stalled, longest unmoved first). When more match, the last line gives the\n--page-token for the next page.",
    `Options:
  --state S         pending, ingested, scheduled, running, succeeded, failed, cancelled
  --type T          echo, sleep, checksum, flaky, fail, or one of the deployment's TASK_TYPES
  --priority P      high, medium, low
  --since T         created at or after T: ISO time (2026-01-31T12:00:00Z), a duration ago (30s, 15m, 1h, 2d) or now
  --until T         created before T (same forms)
  --query Q         a task id prefix, or text in a metadata key or value (case-insensitive)
  --stalled-for D   only unfinished tasks whose status has not changed for D (0, seconds, 90s, 15m, 2h, 1d):
                    candidates for taskctl requeue (a backlog too)
  --stalled         only the tasks taskctl stats counts as stalled: unchanged for the gateway's threshold with
                    nothing older in their stage's queue (their message is lost; a backlog is not listed), those
                    the gateway did not requeue on its own (GATEWAY_STALLED_REQUEUE_LIMIT) or is about to
  --parent ID       only the child tasks of task ID (those its handler submitted), all of them: taskctl get
                    lists the first 100
  --limit N         tasks per page, 1-500 (default 50)
  --page-token TOK  continue a previous listing`,
  ),
  logs: page(
    "Usage: taskctl logs <id> [-f|--follow]",
    "Prints what the task's handler logged with ctx.log, oldest first: time, level, attempt (#N), message and the\nline's other fields as JSON (--json: one TaskLogLine per line). The workers keep the newest WORKER_TASK_LOG_LINES\n(1,000) lines of each task, as long as the task; lines below a worker's LOG_LEVEL are not kept. With --follow, goes\non printing the lines it logs until it has finished (Ctrl-C stops). Exit code 3 when there is no such task.",
    "Options:\n  -f, --follow      keep printing new lines until the task has finished",
  ),
  history: page(
    "Usage: taskctl history <id>",
    "Shows a task's audit events, oldest first: which stage did what, and when.",
  ),
  dlq: page(
    "Usage: taskctl dlq ls [--reason R] [--subject S] [--task ID] [--type T] [--parent ID] [--limit N] [--page-token TOKEN]\n       taskctl dlq replay <id...> | --all [--reason R] [--subject S] [--task ID] [--type T] [--parent ID]\n       taskctl dlq discard <id...> | --all [--reason R] [--subject S] [--task ID] [--type T] [--parent ID]",
    "ls lists dead letters newest first (id, task, subject, reason, attempts, error).\nreplay sends dead-lettered tasks through the pipeline again as a new generation and removes the letters; the tasks\nwaiting for one (depends_on) that its failure cancelled wait for it again (listed as revived);\na letter that is not a task (or whose task succeeded, was cancelled or expired) is reported, not replayed (exit 1).\ndiscard removes letters that will not be replayed (the task stays FAILED; its history records the discard),\nso that the list keeps what still needs a decision.",
    `Options:
  --all             replay or discard every dead letter (up to 500 per call; run again while more remain)
  --reason R        only letters of this reason: invalid, exhausted or rejected (ls, --all)
  --subject S       only letters from this subject, e.g. tasks.ingest (ls, --all)
  --task ID         only the letters of this task (ls, --all)
  --type T          only the letters of tasks of this type (ls, --all)
  --parent ID       only the letters of this task's child tasks: a fan-out's failures
                    (dlq replay --all --parent ID retries them) (ls, --all)
  --limit N         letters per page, 1-500 (default 50)
  --page-token TOK  continue a previous listing`,
  ),
  requeue: page(
    "Usage: taskctl requeue <id...> [--stalled-for DURATION]\n       taskctl requeue --all-stalled [--state S] [--type T] [--priority P] [--since T] [--until T] [--query Q] [--parent ID] [--stalled-for DURATION]",
    'Sends unfinished tasks whose status has not changed for a while through the pipeline again, under the same id,\nas a new generation: for tasks whose queued message was lost (a stream that outgrew its limits discards its\noldest messages), and for tasks FAILED "not queued" (their submission never reached the stream). Whoever follows\nsuch a task sees it finish. A task that is finished, being cancelled or not stalled long enough is reported, not\nrequeued (exit 1). A task whose old message turns up after all is skipped by the worker; keep --stalled-for above\nthe workers\' TASK_TIMEOUT_MS so that no handler of it can still be running. The gateway requeues stalled tasks\non its own (GATEWAY_STALLED_REQUEUE_LIMIT times each); taskctl ls --stalled lists those left, taskctl stats counts\nthem, and --all-stalled requeues every one of them (500 per call until none is left; exit code 4 when an outage\nstopped it: run it again).',
    `Options:
  --stalled-for D   only tasks whose status has not changed for D: 0, seconds, or 90s, 15m, 2h, 1d
                    (default 10m; with --all-stalled the gateway's GATEWAY_STALLED_AFTER_SECONDS; 0 requeues any
                    unfinished task)
  --all-stalled     every task taskctl ls --stalled lists (the gateway's count), instead of ids
  --state, --type, --priority, --since, --until, --query, --parent   with --all-stalled: only those, as for taskctl ls`,
  ),
  limits: page(
    "Usage: taskctl limits ls\n       taskctl limits set <type> [--global-concurrency N] [--rate N/s|N/m|N/h[:BURST]] [--paused]\n       taskctl limits clear|pause|resume <type>",
    "Fleet-wide limits on a task type, set at run time (operators). set: at most N tasks of <type> running at once\nacross every worker, and/or at most N starts per second, minute or hour (after a burst of BURST at once, default\n1); every worker applies them within a second (WORKER_PAUSE_POLL_MS) in place of its own WORKER_TYPE_GLOBAL_CONCURRENCY\nand WORKER_TYPE_RATES for that type (a kind not given is no limit). Tasks already running are not stopped; held\ntasks wait SCHEDULED and spend no attempt; set replaces the type's concurrency and rate and keeps its pause as it is. clear: the workers' own\nsettings apply again. pause: no worker starts one (its tasks wait, queued) until resume, the type's other limits kept. ls: the run-time limits, with the tasks of each\ntype holding a fleet-wide slot now.",
    `Options (set):
  --global-concurrency N  at most N running at once across every worker (1 to 10000)
  --rate N/UNIT[:BURST]   at most N starts per s, m or h across every worker, e.g. 10/s, 100/m:10, 0.5/s
  --paused                also pause the type: no worker starts one (its tasks wait, queued) until limits resume
                          or clear (without it set leaves the pause as it is; limits pause <type> pauses alone)`,
  ),
  pause: page(
    "Usage: taskctl pause <high|medium|low>",
    "Stops the workers from starting tasks of that priority, within a second (WORKER_PAUSE_POLL_MS): its tasks wait\nin the stream, nothing is lost or redelivered, tasks already running finish, and submissions are still accepted.\nFor a downstream outage that only some tasks depend on, or to drain a priority's backlog later. taskctl stats\nlists the paused queues; taskctl resume undoes it.",
  ),
  resume: page("Usage: taskctl resume <high|medium|low>", "Lets the workers take tasks of that priority again."),
  schedule: page(
    'Usage: taskctl schedule add <id> "<cron>" <type> [--timezone TZ] [--overlap allow|skip] [--starting-deadline D] [--start-at T] [--end-at T] [--max-runs N] [--replace] [--payload JSON] [--priority P] [--meta k=v ...] [--attempt-timeout D] [--heartbeat-timeout D] [--max-attempts N] [--retry-delay D ...] [--expires-after D] [--succeeded-retention D] [--concurrency-key KEY --concurrency-limit N] [--fairness-key KEY [--fairness-weight N]]\n       taskctl schedule ls\n       taskctl schedule rm|pause|resume|run <id>',
    'Recurring tasks (operators). add: a task of <type> is submitted at every time <cron> names (five fields,\nminute hour day-of-month month day-of-week, or six with seconds first; or an interval, "@every 90m", "@every 45s",\n"@every 1h30m", at the multiples of it since 1970-01-01 UTC), by one gateway, exactly once per time;\nthe tasks carry schedule_id and scheduled_for in their metadata. ls: every schedule with its next and last run.\nrm: stops it (tasks already submitted are not touched). pause: no runs until resume, which goes on from\nits first time after now (the times in between are not made up). run: submits its task once, now, as you\n(its times do not change); prints the task\'s id.',
    `Options (add):
  --timezone TZ           the IANA time zone the cron expression is read in (default UTC), e.g. Europe/Berlin
  --overlap allow|skip    while the previous run's task has not finished: submit anyway (allow, the default)
                          or skip that time (skip)
  --starting-deadline D   how late a run may still be submitted (30s, 10m, 2h, 1d): a time no gateway could run
                          within D (all down, Redis or NATS down) is skipped instead of run late (default: run
                          however late; either way only the latest of several missed times runs)
  --start-at T            no run before T, an ISO time such as 2026-01-31T12:00:00Z (default: from now)
  --end-at T              no run after T: the schedule then ends (ls: NEXT "ended"; kept until rm)
  --max-runs N            at most N runs at its times (run's do not count), then it ends; a replaced schedule
                          keeps its count
  --replace               replace a schedule with the same id (else: exit 1, it exists)
  --payload, --priority, --meta, --attempt-timeout, --max-attempts, --retry-delay, --retry-multiplier,
  --retry-max-delay, --retry-jitter, --expires-after, --succeeded-retention, --heartbeat-timeout,
  --concurrency-key, --concurrency-limit, --fairness-key, --fairness-weight   the task's, as for submit (expiry
                          counted from each run's time)`,
  ),
} as const;
