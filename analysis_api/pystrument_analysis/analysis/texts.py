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
            "{fn} makes a blocking call ({lib}) for {ms} ms inside an async request handler: the event loop "
            "stalls and every concurrent request waits.",
            "Stop blocking the event loop in {fn}",
            "Use the async equivalent (asyncio.sleep, an async HTTP/DB client such as httpx.AsyncClient or "
            "asyncpg), or run the call in a thread with asyncio.to_thread / run_in_executor.",
        ),
        "zh": (
            "{fn} 在异步请求处理中执行阻塞调用（{lib}）{ms} ms：事件循环被阻塞，所有并发请求都要等待。",
            "避免在 {fn} 中阻塞事件循环",
            "改用异步版本（asyncio.sleep、httpx.AsyncClient、asyncpg 等异步客户端），或用 asyncio.to_thread / "
            "run_in_executor 放到线程中执行。",
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
    return texts[0].format(**values), texts[1].format(**values), texts[2].format(**values)
