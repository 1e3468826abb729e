"""The builtin analyzer's wording, in English (``en``) and Chinese (``zh``)."""

from __future__ import annotations

from typing import Any

# detector -> language -> (bottleneck description, suggestion title, suggestion description)
TEXTS: dict[str, dict[str, tuple[str, str, str]]] = {
    "n_plus_one_query": {
        "en": (
            "{fn} runs the same query {count} times ({ms} ms, {pct}% of the request): an N+1 pattern. Query: {stmt}",
            "Batch the repeated query in {fn}",
            "Load the rows in one query (JOIN, WHERE id IN (...), or the ORM's eager loading such as "
            "selectinload / prefetch_related) instead of one query per item.",
        ),
        "zh": (
            "{fn} 重复执行同一条查询 {count} 次（{ms} ms，占请求的 {pct}%），属于 N+1 查询。查询：{stmt}",
            "合并 {fn} 中的重复查询",
            "用一次查询取回所有数据（JOIN、WHERE id IN (...)，或 ORM 的预加载如 selectinload / "
            "prefetch_related），不要每个条目查询一次。",
        ),
    },
    "slow_query": {
        "en": (
            "A single query in {fn} takes {ms} ms ({pct}% of the request). Query: {stmt}",
            "Speed up the slow query in {fn}",
            "Check the query plan (EXPLAIN ANALYZE): add an index on the filtered/joined columns, select only "
            "the needed columns, and paginate large results.",
        ),
        "zh": (
            "{fn} 中的一条查询耗时 {ms} ms（占请求的 {pct}%）。查询：{stmt}",
            "优化 {fn} 中的慢查询",
            "查看执行计划（EXPLAIN ANALYZE）：为过滤和关联的列添加索引，只查询需要的列，对大结果集分页。",
        ),
    },
    "n_plus_one_http": {
        "en": (
            "{fn} calls {stmt} {count} times ({ms} ms, {pct}% of the request): repeated HTTP calls in a loop.",
            "Batch or parallelise the HTTP calls in {fn}",
            "Use the remote service's batch endpoint, cache the answers, or issue the calls concurrently "
            "(asyncio.gather / a connection-pooled client) instead of one after another.",
        ),
        "zh": (
            "{fn} 调用 {stmt} 共 {count} 次（{ms} ms，占请求的 {pct}%），循环中重复发起 HTTP 请求。",
            "合并或并发 {fn} 中的 HTTP 调用",
            "使用对方服务的批量接口、缓存结果，或并发发起请求（asyncio.gather / 复用连接池的客户端），"
            "不要逐个串行调用。",
        ),
    },
    "slow_http": {
        "en": (
            "An HTTP call in {fn} to {stmt} takes {ms} ms ({pct}% of the request).",
            "Reduce the wait on {stmt}",
            "Cache the response, set a tight timeout, or move the call off the request path (background job).",
        ),
        "zh": (
            "{fn} 中对 {stmt} 的 HTTP 调用耗时 {ms} ms（占请求的 {pct}%）。",
            "减少对 {stmt} 的等待",
            "缓存响应、设置更短的超时，或把调用移出请求路径（放到后台任务）。",
        ),
    },
    "cpu_hotspot": {
        "en": (
            "{fn} spends {ms} ms computing ({pct}% of the request){lib_en}.",
            "Reduce the work done in {fn}",
            "Profile {fn} line by line: cache results that do not change, avoid repeated work in loops, use "
            "better data structures or vectorised/compiled code for heavy computation.",
        ),
        "zh": (
            "{fn} 自身计算耗时 {ms} ms（占请求的 {pct}%）{lib_zh}。",
            "减少 {fn} 中的计算量",
            "逐行分析 {fn}：缓存不变的结果，避免循环中的重复计算，对大量计算使用更合适的数据结构或向量化/编译代码。",
        ),
    },
    "blocking_in_async": {
        "en": (
            "{fn} holds the event loop for {ms} ms ({pct}% of the request) without awaiting ({lib}): while it runs, "
            "every other request on this loop waits.",
            "Stop blocking the event loop in {fn}",
            "If it waits (time.sleep, a sync HTTP or DB client, file I/O), use the async equivalent (await "
            "asyncio.sleep, httpx.AsyncClient, asyncpg) or run the call in a thread with asyncio.to_thread / "
            "loop.run_in_executor. If it computes, move the work off the loop with run_in_executor (a process pool "
            "for pure-Python CPU work), or make the route a plain def so the framework runs it in a worker thread.",
        ),
        "zh": (
            "{fn} 在不 await 的情况下占用事件循环 {ms} ms（占请求的 {pct}%，{lib}）：在此期间，同一事件循环上的"
            "所有其他请求都要等待。",
            "避免在 {fn} 中阻塞事件循环",
            "如果是在等待（time.sleep、同步 HTTP 或数据库客户端、文件 I/O），改用异步版本（await asyncio.sleep、"
            "httpx.AsyncClient、asyncpg），或用 asyncio.to_thread / loop.run_in_executor 放到线程中执行；"
            "如果是在计算，用 run_in_executor（纯 Python 计算用进程池）移出事件循环，或把路由改为普通 def，"
            "让框架在工作线程中执行。",
        ),
    },
    "loop_blocked_by_other_request": {
        "en": (
            "This request waited {ms} ms ({pct}% of it) for its event loop while another request held it: {fn} "
            "({lib}) ran without awaiting. The delay is not in this request's own code.",
            "Stop {fn} from blocking the event loop",
            "Fix the culprit, not this request: in {fn}, use an async client or asyncio.sleep instead of blocking "
            "calls, or move its blocking/CPU work to asyncio.to_thread / run_in_executor. Until then, more worker "
            "processes make such stalls hit fewer requests.",
        ),
        "zh": (
            "本请求等待事件循环 {ms} ms（占 {pct}%），因为另一个请求占用了它：{fn}（{lib}）在执行时没有 await。"
            "延迟不在本请求自己的代码中。",
            "避免 {fn} 阻塞事件循环",
            "应修复阻塞者而不是本请求：在 {fn} 中改用异步客户端或 asyncio.sleep，或把阻塞/计算工作放到 "
            "asyncio.to_thread / run_in_executor 中。在此之前，增加工作进程可以减少受影响的请求。",
        ),
    },
    "lock_wait": {
        "en": (
            "{fn} waits {ms} ms ({pct}% of the request) for a lock or queue ({lib}): concurrent requests queue "
            "behind the code that holds it.",
            "Shorten the wait for the lock in {fn}",
            "Hold the lock for less time (do slow work, I/O and computation outside the critical section), use "
            "finer-grained locks or a larger pool, or avoid the shared state altogether (per-request objects, "
            "an atomic database update instead of a process lock).",
        ),
        "zh": (
            "{fn} 等待锁或队列 {ms} ms（占请求的 {pct}%，{lib}）：并发请求在持有锁的代码后面排队。",
            "缩短 {fn} 中等待锁的时间",
            "缩短持锁时间（把耗时操作、I/O 和计算移到临界区之外），使用更细粒度的锁或更大的池，"
            "或避免共享状态（每个请求独立的对象、用数据库原子更新代替进程锁）。",
        ),
    },
    "deliberate_cost": {
        "en": (
            "{fn} takes {ms} ms ({pct}% of the request, called from {lib}). Password hashing and key derivation are "
            "slow on purpose: the cost is what protects the passwords.",
            "Keep the deliberate cost of {fn} where it belongs",
            "Do not cache the result or weaken it below current guidance (OWASP: e.g. PBKDF2-SHA256 600,000 "
            "iterations, bcrypt cost 10+, Argon2id); tune the work factor within that guidance for your hardware, "
            "hash only at login and password change (keep a session or token afterwards, never hash on every "
            "request), and rate-limit the login endpoint so the cost cannot be used against the service.",
        ),
        "zh": (
            "{fn} 耗时 {ms} ms（占请求的 {pct}%，由 {lib} 调用）。密码哈希和密钥派生是刻意设计得慢的："
            "正是这个开销在保护密码。",
            "让 {fn} 的刻意开销用在该用的地方",
            "不要缓存结果，也不要把强度降到现行安全建议以下（OWASP：如 PBKDF2-SHA256 600,000 次迭代、bcrypt cost "
            "10 以上、Argon2id）；在建议范围内按硬件调整工作因子，只在登录和修改密码时哈希（之后使用会话或令牌，"
            "不要每个请求都哈希），并对登录接口限流，避免这一开销被用来攻击服务。",
        ),
    },
    "debug_mode": {
        "en": (
            "DEBUG mode is on: {fn} ({lib}) spent {ms} ms ({pct}% of the request) on debug-only work, {count} "
            "time(s). Django's DEBUG query log on sqlite runs SELECT QUOTE(?) for each parameter of each query; "
            "this is not an N+1 in the application.",
            "Turn DEBUG mode off",
            "Run with DEBUG = False (Django), FLASK_DEBUG unset, and no debug toolbar in production and in "
            "benchmarks; measure again afterwards, as debug mode also hides the real costs.",
        ),
        "zh": (
            "DEBUG 模式已开启：{fn}（{lib}）在仅用于调试的工作上耗时 {ms} ms（占请求的 {pct}%），共 {count} 次。"
            "Django 在 sqlite 上的 DEBUG 查询日志会为每条查询的每个参数执行 SELECT QUOTE(?)；这不是应用的 N+1 查询。",
            "关闭 DEBUG 模式",
            "在生产环境和压测中设置 DEBUG = False（Django）、不设置 FLASK_DEBUG、不启用调试工具栏；"
            "关闭后重新测量，调试模式也会掩盖真实的开销。",
        ),
    },
    "unexplained": {
        "en": (
            "{ms} ms ({pct}% of the request) is not explained by the findings above. Where it went: {where}."
            "{starved_en}",
            "Account for the rest of the time",
            "Time in framework code (middleware, routing, the server) is the framework's own: fewer middleware or "
            "a lighter stack reduce it. Time not sampled lies outside every function span (start-up of the request, "
            "sending the response) or the profiler got too few samples: a smaller PYSTRUMENT_INTERVAL_MS or the "
            "precise sampler (PYSTRUMENT_SAMPLER=pyinstrument) shows more. Functions listed here each stayed below "
            "the rules' thresholds.",
        ),
        "zh": (
            "{ms} ms（占请求的 {pct}%）没有被以上发现解释。时间去向：{where}。{starved_zh}",
            "说明其余时间的去向",
            "框架代码（中间件、路由、服务器）中的时间属于框架本身：减少中间件或使用更轻的框架可以降低它。"
            "未采样的时间在所有函数 span 之外（请求开始、发送响应），或采样太少：减小 PYSTRUMENT_INTERVAL_MS "
            "或使用精确采样（PYSTRUMENT_SAMPLER=pyinstrument）可以看到更多。这里列出的函数各自都低于规则的阈值。",
        ),
    },
    "serialization": {
        "en": (
            "{fn} spends {ms} ms serialising data with {lib} ({pct}% of the request).",
            "Make serialisation in {fn} cheaper",
            "Serialise less (only the fields needed, paginate), cache serialised results, or use a faster "
            "encoder such as orjson or msgspec.",
        ),
        "zh": (
            "{fn} 使用 {lib} 序列化数据耗时 {ms} ms（占请求的 {pct}%）。",
            "降低 {fn} 中的序列化开销",
            "减少序列化的数据量（只输出需要的字段、分页），缓存序列化结果，或使用 orjson、msgspec 等更快的编码器。",
        ),
    },
    "template_rendering": {
        "en": (
            "{fn} spends {ms} ms rendering templates with {lib} ({pct}% of the request).",
            "Speed up template rendering in {fn}",
            "Cache rendered fragments, move heavy logic and queries out of the template, and keep template "
            "loops small.",
        ),
        "zh": (
            "{fn} 使用 {lib} 渲染模板耗时 {ms} ms（占请求的 {pct}%）。",
            "加快 {fn} 中的模板渲染",
            "缓存渲染好的片段，把复杂逻辑和查询移出模板，减少模板中的循环。",
        ),
    },
    "regex": {
        "en": (
            "{fn} spends {ms} ms in regular expressions ({lib}, {pct}% of the request).",
            "Simplify the regular expressions in {fn}",
            "Compile patterns once at module level, avoid nested quantifiers that backtrack, and use plain "
            "string methods (in, startswith, split) where they suffice.",
        ),
        "zh": (
            "{fn} 在正则表达式（{lib}）上耗时 {ms} ms（占请求的 {pct}%）。",
            "简化 {fn} 中的正则表达式",
            "在模块级预编译正则，避免会大量回溯的嵌套量词，能用字符串方法（in、startswith、split）时就不用正则。",
        ),
    },
    "blocking_wait": {
        "en": (
            "{fn} waits {ms} ms without running ({pct}% of the request){lib_en}, and no span shows what for: a call "
            "into C code (time.sleep, a lock, I/O in an extension without instrumentation) or the GIL, held by "
            "other threads.",
            "Find out what {fn} waits for",
            "If it is I/O, add the OpenTelemetry instrumentation of that client so each call shows as a span; remove "
            "sleeps and fixed retry delays from the request path; cache the result or move the call to a "
            "background job. If other threads hold the GIL (CPU-heavy work in the same process), run fewer threads "
            "per process or move the CPU work out.",
        ),
        "zh": (
            "{fn} 有 {ms} ms 处于等待、没有运行（占请求的 {pct}%）{lib_zh}，且没有任何 span 说明在等什么："
            "可能是调用了 C 代码（time.sleep、锁、未接入追踪的扩展中的 I/O），或在等待被其他线程占用的 GIL。",
            "查明 {fn} 在等待什么",
            "如果是 I/O，为该客户端加上 OpenTelemetry 的 instrumentation，让每次调用都显示为 span；去掉请求路径上的 "
            "sleep 和固定间隔重试；缓存结果或把调用移到后台任务。如果是其他线程占用 GIL（同一进程中有大量计算），"
            "减少每个进程的线程数或把计算移出去。",
        ),
    },
    "async_wait": {
        "en": (
            "{fn} awaits for {ms} ms ({pct}% of the request){lib_en} and no span shows what for: an async call "
            "without instrumentation (an HTTP or database client, a queue) or an asyncio.sleep. The event loop "
            "serves other requests meanwhile: this request is slow, the service is not blocked.",
            "Find out what {fn} awaits",
            "Add the OpenTelemetry instrumentation of that async client so each call shows as a span; run "
            "independent awaits together (asyncio.gather, a TaskGroup); cache the result, set a tight timeout, or "
            "move the call off the request path; remove fixed sleeps and retry delays.",
        ),
        "zh": (
            "{fn} 在 await 中等待了 {ms} ms（占请求的 {pct}%）{lib_zh}，且没有任何 span 说明在等什么："
            "可能是未接入追踪的异步调用（HTTP 或数据库客户端、队列）或 asyncio.sleep。等待期间事件循环仍在处理"
            "其他请求：慢的是这个请求，服务本身没有被阻塞。",
            "查明 {fn} 在 await 什么",
            "为该异步客户端加上 OpenTelemetry 的 instrumentation，让每次调用都显示为 span；把互不依赖的 await "
            "一起执行（asyncio.gather、TaskGroup）；缓存结果、设置更短的超时，或把调用移出请求路径；去掉固定的 "
            "sleep 和重试间隔。",
        ),
    },
    "gc_pause": {
        "en": (
            "Garbage collection ({lib}) stopped the process for {ms} ms ({pct}% of the request, {count} "
            "collection(s)) while {fn} ran. A collection stops every thread, so the requests running alongside "
            "waited too.",
            "Make full garbage collections rarer",
            "Call gc.freeze() once start-up is done, so full collections no longer scan the objects that live as long "
            "as the process (with gunicorn, in each worker once the app is loaded: the post_worker_init hook); raise "
            "the thresholds with gc.set_threshold(); create fewer short-lived container objects per request.",
        ),
        "zh": (
            "垃圾回收（{lib}）在 {fn} 运行时让进程停顿了 {ms} ms（占请求的 {pct}%，共 {count} 次）。"
            "回收期间所有线程都会停下，同时在处理的其他请求也一起等待。",
            "减少完整垃圾回收的次数",
            "启动完成后调用 gc.freeze()，让完整回收不再扫描与进程同寿命的对象"
            "（gunicorn 在每个工作进程加载应用之后调用，即 post_worker_init 钩子）；"
            "用 gc.set_threshold() 提高阈值；减少每个请求创建的短命容器对象。",
        ),
    },
}

# appended to an N+1 description when the loop's own work was merged into it
LOOP_NOTE = {
    "en": " Of that, {calls_ms} ms is in the calls themselves and the rest in the loop's per-item work.",
    "zh": "其中 {calls_ms} ms 在调用本身，其余在循环中逐条处理的开销。",
}

IMPROVEMENT = {
    "en": "Could save up to about {save_ms} ms ({save_pct}% of this request)",
    "zh": "预计可减少约 {save_ms} ms（本次请求的 {save_pct}%）",
}

# appended to a CPU hotspot whose own time was partly spent waiting to run
WAITED_NOTE = {
    "en": " Of that, {waited_ms} ms the thread waited to run (the GIL, held by other threads).",
    "zh": "其中 {waited_ms} ms 线程在等待运行（GIL 被其他线程占用）。",
}

NO_FINDINGS = {
    "en": "No bottleneck above the thresholds in this trace.",
    "zh": "本次调用链中没有超过阈值的性能瓶颈。",
}

FALLBACK_NOTE = {
    "en": "{service} failed ({error}); this is the builtin analysis.",
    "zh": "{service} 调用失败（{error}），以下为内置规则分析结果。",
}


def render(detector: str, language: str, fields: dict[str, Any]) -> tuple[str, str, str]:
    """Description, title and suggestion text for one finding."""
    texts = TEXTS[detector].get(language) or TEXTS[detector]["en"]
    values = dict(fields)
    lib = values.get("lib") or ""
    values.setdefault("lib_en", f", mostly in {lib}" if lib else "")
    values.setdefault("lib_zh", f"，主要在 {lib} 中" if lib else "")
    starved = values.get("starved") or ""
    values.setdefault("starved_en", f" The request could not be sampled: {starved}." if starved else "")
    values.setdefault("starved_zh", f"该请求无法采样：{starved}。" if starved else "")
    return texts[0].format(**values), texts[1].format(**values), texts[2].format(**values)
