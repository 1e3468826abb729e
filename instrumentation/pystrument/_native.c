/* The sampler's compiled part: the ticks at which nothing can have moved, spent without the GIL.

   A thread's Python stack changes only while it holds the GIL, so only while it runs: a thread whose CPU clock has
   not moved since the sampler took its stack (with the GIL held) is still where the sampler saw it. `still` does the
   ticks that only learn this, with the GIL released and no Python code run: one CPU-clock read per profiled thread
   (the kernel's, exact even for a thread on its core). It returns to the Python sampler at the first tick that finds
   a thread ran, once a request starts (`poke`), or at a deadline; between requests it ticks with no thread to watch
   until a request starts. A tick then costs the wake-up and a system call per thread, not a pass of the sampler.

   Better still, on CPython 3.11 (`hook`): a profile function set on each blocked thread fires at its first call or
   return, the first moment its stack can change; `still` then needs no tick at all and sleeps until one fires.

   Nothing here touches Python objects without the GIL: only clock ids, file descriptors and numbers passed in. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_WATCH 256

/* One sampler's helper. `found` is what the running (or latest) `still` call found so far, for `progress`: a lane
   closing on its own thread (its request ended while the helper waited) takes the ticks that found it still before
   the sampler gets them. Written by the sampler thread without the GIL, read under it by any other: a sequence lock
   (odd while being written). Parked (no request sampled), it blocks on `timer`, which a `poke` arms for when its
   request's first sample is due: a request that ends before then wakes no thread. */
typedef struct {
    PyObject_HEAD
    atomic_int poked;
    atomic_int parked;
    atomic_int retired; /* no request left to sample (`retire`), until the next `poke` */
    atomic_int ticking; /* `still` waits on `timer` for its next tick (armed for `tick_at`), which a poke may bring
                           forward to when its request's first sample is due */
    _Atomic double tick_at;
    _Atomic double due;   /* when a parked helper returns: the earliest a poke since the last `unpoke`/`retire` asked */
    _Atomic double delay; /* how long after a poke that names no delay (the sampler's interval) */
    int timer;              /* a timerfd on CLOCK_MONOTONIC */
    /* The resume hooks (`hook`): the watched threads (by thread id) of the call `hook_call`, when each first ran
       Python code again (0.0: not yet) and its CPU clock then; `fire_due`: the earliest such time plus `hook_wake`,
       when `still` returns. Written under the GIL (`hook`, `on_event`), read by `still` without it. */
    atomic_long hook_count;
    long hook_call;
    unsigned long hook_threads[MAX_WATCH];
    _Atomic double fire_at[MAX_WATCH];
    _Atomic double fire_cpu[MAX_WATCH];
    _Atomic double fire_due;
    _Atomic double hook_wake;
    _Atomic double hook_first; /* a hooked `still`'s ticks, for `progress` while it waits: `hook_step` apart */
    _Atomic double hook_step;
    atomic_long wakes; /* times `still` woke up (its timer fired or it was poked), for the tests */
    int refused;       /* setting a hook failed once (an audit hook): none is set again */
    _Atomic double retired_at; /* when `retire` was last called */
    struct {
        atomic_ulong seq;
        atomic_long call;  /* the caller's number for the call */
        atomic_long count; /* threads watched */
        atomic_long ticks;
        atomic_int hooked; /* the ticks are a hooked wait's, still under way: counted by `progress` from the clock */
        _Atomic double last;
        _Atomic double stat_cpu[MAX_WATCH];
        atomic_ullong stat_runs[MAX_WATCH];
        atomic_int stat_ok[MAX_WATCH];
    } found;
} Helper;

static void
found_begin(Helper *self)
{
    atomic_fetch_add_explicit(&self->found.seq, 1, memory_order_acq_rel);
}

static void
found_end(Helper *self)
{
    atomic_fetch_add_explicit(&self->found.seq, 1, memory_order_release);
}

static double
monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* time.perf_counter()'s clock on Linux */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double when);

/* Arm the timer for `when` (CLOCK_MONOTONIC seconds; 0: disarm). */
static void
arm(Helper *self, double when)
{
    struct itimerspec spec = {{0, 0}, {0, 0}};
    if (when > 0.0) {
        double whole = (double)(time_t)when;
        spec.it_value.tv_sec = (time_t)whole;
        spec.it_value.tv_nsec = (long)((when - whole) * 1e9);
        if (spec.it_value.tv_nsec >= 1000000000L) {
            spec.it_value.tv_sec += 1;
            spec.it_value.tv_nsec -= 1000000000L;
        }
        if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) {
            spec.it_value.tv_nsec = 1;
        }
    }
    timerfd_settime(self->timer, TFD_TIMER_ABSTIME, &spec, NULL);
}

/* Parked, without the GIL: until the time the pokes since it last returned asked for (`delay` seconds after a poke
   that names none; at once if that is past already). A poke while parked arms the timer instead of waking this
   thread, and the last request ending disarms it (`retire`): a request that ends before it is due wakes no thread at
   all. The state is checked again after every wake-up (a timer fired for a request that ended just then, a stale
   expiry): it returns only while a request is on. */
static void
wait_until_due(Helper *self, double delay)
{
    atomic_store(&self->delay, delay);
    atomic_store(&self->parked, 1);
    for (;;) {
        if (atomic_load(&self->poked)) { /* poked before it parked (no timer armed), or the timer fired */
            sleep_until(atomic_load(&self->due));
            if (atomic_load(&self->poked) || !atomic_load(&self->retired)) {
                break;
            }
            continue; /* its request ended meanwhile: parked on */
        }
        uint64_t expirations;
        if (read(self->timer, &expirations, sizeof(expirations)) < 0 && errno != EINTR) {
            sleep_until(monotonic_now() + delay); /* no timer (cannot happen once made): poll at the interval */
        }
    }
    atomic_store(&self->parked, 0);
}

static void
sleep_until(double when)
{
    struct timespec ts;
    double whole = (double)(long long)when;
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = (long)((when - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* `still` waiting for its next tick at `at`, without the GIL, on the timer: a `poke` meanwhile brings the wake-up
   forward to when its request's first sample is due (an interval in), when that is earlier. Its ticks may be four
   intervals apart while every thread is blocked; sleeping through a poke, a request starting then got its first sample
   up to that late (a 12 ms request none). The timer is armed before `ticking` is raised and the poke flag read after:
   a poke either sees the flag (and arms for its time) or is seen here (and armed for). */
static void
wait_tick(Helper *self, double at)
{
    atomic_store(&self->tick_at, at);
    arm(self, at);
    atomic_store(&self->ticking, 1);
    double early = atomic_load(&self->fire_due); /* a hooked thread ran Python code before this wait began */
    if (atomic_load(&self->poked)) {
        double due = atomic_load(&self->due);
        if (due < early) {
            early = due;
        }
    }
    if (early < at) {
        arm(self, early);
    }
    for (;;) {
        uint64_t expirations;
        if (read(self->timer, &expirations, sizeof(expirations)) < 0) {
            if (errno == EINTR) {
                continue;
            }
            sleep_until(at); /* no timer (cannot happen once made): the tick as planned */
            break;
        }
        atomic_fetch_add(&self->wakes, 1);
        if (atomic_load(&self->poked)) {
            break;
        }
        double tick = atomic_load(&self->tick_at);
        if (tick == INFINITY) {
            continue; /* retired meanwhile (`retire` disarmed the tick): parked until a poke arms the timer */
        }
        double now = monotonic_now(), fired = atomic_load(&self->fire_due);
        if (now >= tick || now >= fired) {
            break;
        }
        /* an expiry for a poke already taken (unpoked since): on to the tick */
        arm(self, tick < fired ? tick : fired);
    }
    atomic_store(&self->ticking, 0);
    if (monotonic_now() < at) {
        arm(self, 0.0); /* woken early by a poke: the tick's expiry would wake a park that follows for nothing */
    }
}

/* The thread's (CPU nanoseconds, run-queue delay nanoseconds, times put on a core) from its open schedstat file;
 * 0 on success. */
static int
read_schedstat3(int fd, unsigned long long *cpu, unsigned long long *delay, unsigned long long *runs)
{
    char buffer[128];
    ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
    if (n <= 0) {
        return -1;
    }
    buffer[n] = '\0';
    char *end;
    *cpu = strtoull(buffer, &end, 10);
    if (end == buffer) {
        return -1;
    }
    char *p = end;
    *delay = strtoull(p, &end, 10);
    if (end == p) {
        return -1;
    }
    p = end;
    *runs = strtoull(p, &end, 10);
    return end == p ? -1 : 0;
}

/* The thread's (CPU nanoseconds, times put on a core) from its open schedstat file; 0 on success. */
static int
read_schedstat(int fd, unsigned long long *cpu, unsigned long long *runs)
{
    unsigned long long delay;
    return read_schedstat3(fd, cpu, &delay, runs);
}

PyDoc_STRVAR(schedstat_doc,
"schedstat(fd) -> (cpu, delay, runs) | None\n\n"
"A thread's open ``/proc/self/task/<tid>/schedstat`` file read with the GIL held (a pread of a few dozen bytes):\n"
"its CPU seconds, seconds ready to run without a core, and times put on a core; None when unreadable.");

static PyObject *
schedstat(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long long cpu, delay, runs;
    if (fd < 0 || fd > INT_MAX || read_schedstat3((int)fd, &cpu, &delay, &runs) != 0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(ddK)", cpu / 1e9, delay / 1e9, runs);
}

static PyMethodDef module_methods[] = {
    {"schedstat", (PyCFunction)schedstat, METH_O, schedstat_doc},
    {NULL, NULL, 0, NULL},
};

enum { WHY_DEADLINE = 0, WHY_MOVED = 1, WHY_POKED = 2 };

/* The ticks of a hooked wait (`hook`) before `end`: every `step` from `first`, none past `now`; the last at `*last`. */
static long
virtual_ticks(double first, double step, double end, double now, double *last)
{
    *last = 0.0;
    if (!(step > 0.0) || !(first < end) || first > now) {
        return 0;
    }
    /* t < end and t <= now, counted rather than stepped through (a park may have lasted minutes) */
    long ticks = end <= now ? (long)ceil((end - first) / step) : (long)floor((now - first) / step) + 1;
    if (ticks < 1) {
        ticks = 1;
    }
    *last = first + (double)(ticks - 1) * step;
    return ticks;
}

/* `still` with every watched thread hooked: no tick, only waits. A thread's Python stack changes only when it calls
   or returns (the hook's first event, `on_event`), so the ticks until then would all have found it still: they are
   counted from the clock instead of spent. Returns `hook_wake` after the first thread ran Python code again (its
   first sample, as a new request's is an interval in), at a poke, or at the deadline; parks when retired. */
static void
hooked_wait(Helper *self, Py_ssize_t count, double first, double step, double deadline, double wake, long *ticks,
            double *last, int *why, double *at)
{
    double began = monotonic_now();
    double ended = INFINITY; /* when it parked: its requests had ended, no tick counts after that */
    for (;;) {
        wait_tick(self, deadline);
        if (atomic_exchange(&self->poked, 0)) {
            *why = WHY_POKED;
            break;
        }
        if (count > 0 && atomic_load(&self->retired)) {
            ended = monotonic_now();
            wait_until_due(self, wake);
            atomic_store(&self->poked, 0);
            *why = WHY_POKED;
            break;
        }
        double now = monotonic_now();
        if (now >= atomic_load(&self->fire_due)) {
            *why = WHY_MOVED;
            break;
        }
        if (now >= deadline) {
            *why = WHY_DEADLINE;
            break;
        }
    }
    *at = monotonic_now();
    double retired_at = atomic_load(&self->retired_at); /* retired while it waited for the fire (parked in wait_tick) */
    if (retired_at >= began && retired_at < ended) {
        ended = retired_at;
    }
    double end = ended < *at ? ended : *at;
    for (Py_ssize_t i = 0; i < count; i++) {
        double fired = atomic_load(&self->fire_at[i]);
        if (fired > 0.0 && fired < end) {
            end = fired;
        }
    }
    *ticks = virtual_ticks(first, step, end, *at, last);
    found_begin(self);
    atomic_store_explicit(&self->found.last, *last, memory_order_relaxed);
    atomic_store_explicit(&self->found.ticks, *ticks, memory_order_relaxed);
    atomic_store_explicit(&self->found.hooked, 0, memory_order_relaxed);
    found_end(self);
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define HAVE_HOOKS 1

/* The resume hook: a profile function set on a watched thread while it is off Python code (`hook`), called at its
   first call or return, i.e. the first moment its Python stack can change. It notes when (and the thread's CPU
   clock), asks the waiting `still` to return a `hook_wake` later, and takes itself off. Runs on that thread, with the
   GIL. */
static int
on_event(PyObject *obj, PyFrameObject *Py_UNUSED(frame), int Py_UNUSED(what), PyObject *Py_UNUSED(arg))
{
    Helper *self = (Helper *)obj;
    unsigned long me = PyThread_get_thread_ident();
    long count = atomic_load(&self->hook_count);
    for (long i = 0; i < count; i++) {
        if (self->hook_threads[i] != me) {
            continue;
        }
        if (atomic_load(&self->fire_at[i]) == 0.0) {
            struct timespec cpu;
            double cpu_s = clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0
                               ? (double)cpu.tv_sec + (double)cpu.tv_nsec * 1e-9
                               : -1.0;
            double now = monotonic_now();
            atomic_store(&self->fire_cpu[i], cpu_s);
            atomic_store(&self->fire_at[i], now);
            double due = now + atomic_load(&self->hook_wake);
            if (due < atomic_load(&self->fire_due)) {
                atomic_store(&self->fire_due, due);
                if (atomic_load(&self->ticking) && due < atomic_load(&self->tick_at)) {
                    arm(self, due);
                }
            }
        }
        break;
    }
    /* Off again (its reference to the helper with it); an audit hook refusing it leaves the hook on: it fires
       into nothing at every event until the next `hook` call replaces or keeps it. */
    if (_PyEval_SetProfile(PyThreadState_Get(), NULL, NULL) < 0) {
        PyErr_Clear();
    }
    return 0;
}

static PyThreadState *
thread_state(unsigned long thread_id)
{
    PyThreadState *ts = PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(PyThreadState_Get()));
    for (; ts != NULL; ts = PyThreadState_Next(ts)) {
        if (ts->thread_id == thread_id) {
            return ts;
        }
    }
    return NULL;
}
#else
#define HAVE_HOOKS 0
#endif

PyDoc_STRVAR(hook_doc,
"hook(thread_ids, call, wake) -> bool\n\n"
"Set the resume hook on every thread of ``thread_ids`` (threading.get_ident() values) for ``still`` call number\n"
"``call``: a profile function that fires at the thread's first Python call or return, notes when (``fire``), makes the\n"
"hooked ``still`` return ``wake`` seconds later, and takes itself off. False (none set): a thread is gone, traced or\n"
"profiled by someone else (its profile function is left alone), too many, or this Python has no such hooks (3.11\n"
"only: from 3.12 a profile function instruments every thread's code); ``still`` then ticks.");

static PyObject *
hook(Helper *self, PyObject *args)
{
    PyObject *ids_obj;
    long call;
    double wake;
    if (!PyArg_ParseTuple(args, "Old:hook", &ids_obj, &call, &wake)) {
        return NULL;
    }
    atomic_store(&self->hook_count, 0);
    atomic_store(&self->fire_due, INFINITY);
#if HAVE_HOOKS
    if (self->refused) {
        Py_RETURN_FALSE;
    }
    PyObject *seq = PySequence_Fast(ids_obj, "hook: thread_ids must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyThreadState *states[MAX_WATCH];
    int ok = count <= MAX_WATCH;
    for (Py_ssize_t i = 0; ok && i < count; i++) {
        unsigned long id = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(seq, i));
        if (id == (unsigned long)-1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        PyThreadState *ts = thread_state(id);
        ok = ts != NULL && ts != PyThreadState_Get() && ts->c_tracefunc == NULL
             && (ts->c_profilefunc == NULL
                 || (ts->c_profilefunc == on_event && ts->c_profileobj == (PyObject *)self));
        states[i] = ts;
        self->hook_threads[i] = id;
        atomic_store(&self->fire_at[i], 0.0);
    }
    Py_DECREF(seq);
    if (!ok) {
        Py_RETURN_FALSE;
    }
    self->hook_call = call;
    atomic_store(&self->hook_wake, wake);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (states[i]->c_profilefunc != on_event && _PyEval_SetProfile(states[i], on_event, (PyObject *)self) < 0) {
            PyErr_Clear(); /* an audit hook said no: those set fire into nothing, and no more are set */
            self->refused = 1;
            Py_RETURN_FALSE;
        }
    }
    atomic_store(&self->hook_count, (long)count);
    Py_RETURN_TRUE;
#else
    (void)ids_obj;
    (void)call;
    (void)wake;
    Py_RETURN_FALSE;
#endif
}

PyDoc_STRVAR(fire_doc,
"fire(call, i) -> (at, cpu) | None\n\n"
"When thread ``i`` of hooked ``still`` call number ``call`` first ran Python code again (time.perf_counter() time) and\n"
"its CPU clock then (seconds, -1.0 unread); None when it has not, or the latest hooked call is another.");

static PyObject *
fire(Helper *self, PyObject *args)
{
    long call, i;
    if (!PyArg_ParseTuple(args, "ll:fire", &call, &i)) {
        return NULL;
    }
    if (self->hook_call != call || i < 0 || i >= atomic_load(&self->hook_count)) {
        Py_RETURN_NONE;
    }
    double at = atomic_load(&self->fire_at[i]);
    if (at == 0.0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(dd)", at, atomic_load(&self->fire_cpu[i]));
}

PyDoc_STRVAR(wakes_doc, "wakes() -> int\n\nHow many times ``still`` woke up so far (its timer fired, or a poke).");

static PyObject *
wakes(Helper *self, PyObject *Py_UNUSED(unused))
{
    return PyLong_FromLong(atomic_load(&self->wakes));
}


static PyObject *still_result(long ticks, double last, int why, double at, Py_ssize_t count, const int *stat_ok,
                              const unsigned long long *stat_cpu, const unsigned long long *stat_runs);

PyDoc_STRVAR(still_doc,
"still(clocks, cpus, fds, first, step, deadline, call, wake) -> (ticks, last, why, at, stats)\n\n"
"Tick at ``first``, then every ``step`` seconds (time.perf_counter() times), without the GIL, and at each tick read\n"
"every thread's CPU clock (``clocks``, as for time.clock_gettime_ns) against what it read when the sampler last\n"
"took its stack (``cpus``, nanoseconds). Returns at the first tick at which a thread ran (why 1; a clock that\n"
"cannot be read counts as that), or a request started (``poke`` since the last ``unpoke``; why 2: at the next tick\n"
"or when the poke's first sample is due, if sooner), or at the first tick past ``deadline`` (why 0). ``ticks``\n"
"counts the ticks before that which found every thread still, the last of them at ``last`` (0.0: none); ``at`` is\n"
"the tick it returned at (the wake-up, when a poke's). ``stats`` gives, per thread, its schedstat\n"
"(CPU seconds, times put on a core) as read at the first still tick from ``fds`` (None: no file, no still tick).\n"
"What it found so far is ``progress(call, i)``'s, until the next call. Retired (``retire``) while it watches\n"
"threads, it parks (at once while it waits for a tick, else at its next tick) and returns after the next ``poke``\n"
"(why 2): when that poke's first sample is due, or ``wake`` seconds after it when it parked at a tick.");

static PyObject *
still(Helper *self, PyObject *args)
{
    PyObject *clocks_obj, *cpus_obj, *fds_obj;
    double first, step, deadline, wake;
    long call;
    int hooked = 0;
    if (!PyArg_ParseTuple(args, "OOOdddld|p:still", &clocks_obj, &cpus_obj, &fds_obj, &first, &step, &deadline, &call,
                          &wake, &hooked)) {
        return NULL;
    }
    PyObject *seqs[3] = {NULL, NULL, NULL};
    PyObject *objs[3] = {clocks_obj, cpus_obj, fds_obj};
    for (int k = 0; k < 3; k++) {
        seqs[k] = PySequence_Fast(objs[k], "still: clocks, cpus and fds must be sequences");
        if (seqs[k] == NULL) {
            for (int j = 0; j < k; j++) {
                Py_DECREF(seqs[j]);
            }
            return NULL;
        }
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seqs[0]);
    clockid_t clocks[MAX_WATCH];
    long long cpus[MAX_WATCH];
    int fds[MAX_WATCH];
    int bad = count > MAX_WATCH || PySequence_Fast_GET_SIZE(seqs[1]) != count
              || PySequence_Fast_GET_SIZE(seqs[2]) != count || !(step > 0.0);
    for (Py_ssize_t i = 0; !bad && i < count; i++) {
        clocks[i] = (clockid_t)PyLong_AsLong(PySequence_Fast_GET_ITEM(seqs[0], i));
        cpus[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seqs[1], i));
        fds[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(seqs[2], i));
        bad = PyErr_Occurred() != NULL;
    }
    for (int k = 0; k < 3; k++) {
        Py_DECREF(seqs[k]);
    }
    if (bad) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "still: clocks, cpus and fds must be equally long (at most 256); step > 0");
        }
        return NULL;
    }

    long ticks = 0;
    double last = 0.0, at = first;
    int why = WHY_DEADLINE;
    unsigned long long stat_cpu[MAX_WATCH], stat_runs[MAX_WATCH];
    int stat_ok[MAX_WATCH];
    if (atomic_load(&self->found.seq) & 1) { /* a fork caught the writer mid-way: its only writer is us */
        atomic_fetch_add(&self->found.seq, 1);
    }
    hooked = hooked && self->hook_call == call && atomic_load(&self->hook_count) == (long)count;
    if (!hooked) { /* resume hooks set for an earlier call fire into nothing */
        atomic_store(&self->hook_count, 0);
        atomic_store(&self->fire_due, INFINITY);
    }
    found_begin(self);
    atomic_store(&self->found.call, call);
    atomic_store(&self->found.count, (long)count);
    atomic_store(&self->found.ticks, 0);
    atomic_store(&self->found.hooked, hooked);
    atomic_store(&self->hook_first, first);
    atomic_store(&self->hook_step, step);
    found_end(self);
    if (hooked) {
        Py_BEGIN_ALLOW_THREADS
        hooked_wait(self, count, first, step, deadline, wake, &ticks, &last, &why, &at);
        Py_END_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < count; i++) {
            stat_ok[i] = 0;
        }
        return still_result(ticks, last, why, at, count, stat_ok, stat_cpu, stat_runs);
    }
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        wait_tick(self, at);
        if (atomic_exchange(&self->poked, 0)) {
            why = WHY_POKED;
            at = monotonic_now();
            break;
        }
        if (count > 0 && atomic_load(&self->retired)) {
            /* The requests it watched have ended (their lanes took what it found): parked until one has been on
               for `wake`. */
            wait_until_due(self, wake);
            atomic_store(&self->poked, 0);
            at = monotonic_now();
            why = WHY_POKED;
            break;
        }
        int moved = 0;
        for (Py_ssize_t i = 0; i < count && !moved; i++) {
            struct timespec ts;
            moved = clock_gettime(clocks[i], &ts) != 0
                    || (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec != cpus[i];
        }
        if (moved) {
            why = WHY_MOVED;
            break;
        }
        if (ticks == 0) { /* off its core since the sampler read it: schedstat's figures are exact now */
            for (Py_ssize_t i = 0; i < count; i++) {
                stat_ok[i] = fds[i] >= 0 && read_schedstat(fds[i], &stat_cpu[i], &stat_runs[i]) == 0;
            }
        }
        ticks++;
        last = at;
        found_begin(self);
        if (ticks == 1) {
            for (Py_ssize_t i = 0; i < count; i++) {
                atomic_store_explicit(&self->found.stat_ok[i], stat_ok[i], memory_order_relaxed);
                atomic_store_explicit(&self->found.stat_cpu[i], (double)stat_cpu[i] / 1e9, memory_order_relaxed);
                atomic_store_explicit(&self->found.stat_runs[i], stat_runs[i], memory_order_relaxed);
            }
        }
        atomic_store_explicit(&self->found.last, last, memory_order_relaxed);
        atomic_store_explicit(&self->found.ticks, ticks, memory_order_relaxed);
        found_end(self);
        double now = monotonic_now();
        if (now >= deadline) {
            why = WHY_DEADLINE;
            break;
        }
        at += step;
        if (at < now) { /* woken late (a loaded machine): the next tick a step from now, not a burst of catch-up */
            at = now + step;
        }
    }
    Py_END_ALLOW_THREADS
    return still_result(ticks, last, why, at, count, stat_ok, stat_cpu, stat_runs);
}

static PyObject *
still_result(long ticks, double last, int why, double at, Py_ssize_t count, const int *stat_ok,
             const unsigned long long *stat_cpu, const unsigned long long *stat_runs)
{
    PyObject *stats = PyTuple_New(count);
    if (stats == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item;
        if (ticks > 0 && stat_ok[i]) {
            item = Py_BuildValue("(dK)", (double)stat_cpu[i] / 1e9, stat_runs[i]);
            if (item == NULL) {
                Py_DECREF(stats);
                return NULL;
            }
        }
        else {
            item = Py_NewRef(Py_None);
        }
        PyTuple_SET_ITEM(stats, i, item);
    }
    return Py_BuildValue("ldidN", ticks, last, why, at, stats);
}

PyDoc_STRVAR(progress_doc,
"progress(call, i) -> (ticks, last, stat) | None\n\n"
"What ``still`` call number ``call`` has found of its thread ``i`` so far (running or returned, until the next\n"
"call): its ticks that found every thread still, the last at ``last``, and the thread's schedstat then; None when\n"
"the latest call is another, or it found none.");

static PyObject *
progress(Helper *self, PyObject *args)
{
    long call, i;
    if (!PyArg_ParseTuple(args, "ll:progress", &call, &i)) {
        return NULL;
    }
    for (long spins = 0;; spins++) {
        if (spins > 10000000L) {
            Py_RETURN_NONE; /* the writer never finished (a fork caught it mid-way): nothing to take */
        }
        unsigned long before = atomic_load_explicit(&self->found.seq, memory_order_acquire);
        if (before & 1) {
            continue; /* being written: a few stores, without a system call in between */
        }
        long ticks = atomic_load_explicit(&self->found.ticks, memory_order_relaxed);
        int ours = atomic_load_explicit(&self->found.call, memory_order_relaxed) == call && i >= 0
                   && i < atomic_load_explicit(&self->found.count, memory_order_relaxed);
        if (ours && atomic_load_explicit(&self->found.hooked, memory_order_relaxed)) {
            /* a hooked wait under way: its ticks up to when this thread ran Python code again (or now) */
            double first = atomic_load(&self->hook_first), step = atomic_load(&self->hook_step);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&self->found.seq, memory_order_relaxed) != before) {
                continue;
            }
            double now = monotonic_now(), fired = atomic_load(&self->fire_at[i]), hooked_last;
            long hooked_ticks = virtual_ticks(first, step, fired > 0.0 && fired < now ? fired : now, now, &hooked_last);
            if (hooked_ticks == 0) {
                Py_RETURN_NONE;
            }
            return Py_BuildValue("(ldO)", hooked_ticks, hooked_last, Py_None);
        }
        double last = atomic_load_explicit(&self->found.last, memory_order_relaxed);
        int ok = ours && atomic_load_explicit(&self->found.stat_ok[i], memory_order_relaxed);
        double cpu = ok ? atomic_load_explicit(&self->found.stat_cpu[i], memory_order_relaxed) : 0.0;
        unsigned long long runs = ok ? atomic_load_explicit(&self->found.stat_runs[i], memory_order_relaxed) : 0;
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&self->found.seq, memory_order_relaxed) != before) {
            continue;
        }
        if (!ours || ticks == 0) {
            Py_RETURN_NONE;
        }
        if (!ok) {
            return Py_BuildValue("(ldO)", ticks, last, Py_None);
        }
        return Py_BuildValue("(ld(dK))", ticks, last, cpu, runs);
    }
}

PyDoc_STRVAR(poke_doc,
"poke(delay=-1.0)\n\nA request started: ``still`` returns at its next tick or ``delay`` seconds from now, whichever\n"
"comes first (its ticks may be intervals apart); ``park`` returns ``delay`` seconds\n"
"from now (its interval if negative; the earliest of the pokes until ``unpoke``), woken by a timer that poke arms,\n"
"not by poke itself.");

static PyObject *
poke(Helper *self, PyObject *args)
{ /* called with the GIL held: pokes, unpokes and retires never run at once */
    double delay = -1.0;
    if (!PyArg_ParseTuple(args, "|d:poke", &delay)) {
        return NULL;
    }
    atomic_store(&self->retired, 0);
    double due = monotonic_now() + (delay >= 0.0 ? delay : atomic_load(&self->delay));
    if (atomic_load(&self->poked) && atomic_load(&self->due) <= due) {
        Py_RETURN_NONE; /* announced already, as early */
    }
    atomic_store(&self->due, due);
    atomic_store(&self->poked, 1);
    if (atomic_load(&self->parked)) { /* seen after the store: the parked helper either sees the flag or the timer */
        arm(self, due);
    }
    else if (atomic_load(&self->ticking) && due < atomic_load(&self->tick_at)) { /* `still` waits: wake it then */
        arm(self, due);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(park_doc,
"park(interval) -> None\n\n"
"Wait without the GIL until a request has been on for ``interval`` seconds since the ``poke`` that announced it (or\n"
"the delay that poke named; one since the last ``unpoke`` counts): the sampler's first tick of the request. No\n"
"thread wakes in between: the poke arms a timer, and a ``retire`` (the last request ended) disarms it.");

static PyObject *
park(Helper *self, PyObject *args)
{
    double interval;
    if (!PyArg_ParseTuple(args, "d:park", &interval)) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    wait_until_due(self, interval > 0.0 ? interval : 0.0);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(unpoke_doc,
"unpoke()\n\nForget earlier pokes: called by the sampler just before it reads which requests are active, so\n"
"that a request added before that read does not end the next ``still`` at its first tick.");

static PyObject *
unpoke(Helper *self, PyObject *Py_UNUSED(unused))
{
    atomic_store(&self->poked, 0);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(retire_doc,
"retire()\n\n"
"No request is left to sample (the last one ended): forget earlier pokes (a parked helper's timer is disarmed: it\n"
"sleeps on), and let a ``still`` watching threads park (as ``park`` does: it returns an interval after the next\n"
"``poke``) rather than return: at once, without waking, while it waits for a tick; else at its next tick.");

static PyObject *
retire(Helper *self, PyObject *Py_UNUSED(unused))
{
    atomic_store(&self->poked, 0);
    atomic_store(&self->retired_at, monotonic_now());
    atomic_store(&self->retired, 1);
    if (atomic_load(&self->parked)) {
        arm(self, 0.0);
    }
    else if (atomic_load(&self->ticking)) {
        /* `still` waits for a tick that would only find the requests ended and park: it parks now, without waking
           (one wake-up less per request in sparse traffic); the next poke arms the timer for its first sample. */
        atomic_store(&self->tick_at, INFINITY);
        arm(self, 0.0);
    }
    Py_RETURN_NONE;
}

static PyMethodDef helper_methods[] = {
    {"retire", (PyCFunction)retire, METH_NOARGS, retire_doc},
    {"still", (PyCFunction)still, METH_VARARGS, still_doc},
    {"progress", (PyCFunction)progress, METH_VARARGS, progress_doc},
    {"poke", (PyCFunction)poke, METH_VARARGS, poke_doc},
    {"unpoke", (PyCFunction)unpoke, METH_NOARGS, unpoke_doc},
    {"park", (PyCFunction)park, METH_VARARGS, park_doc},
    {"hook", (PyCFunction)hook, METH_VARARGS, hook_doc},
    {"fire", (PyCFunction)fire, METH_VARARGS, fire_doc},
    {"wakes", (PyCFunction)wakes, METH_NOARGS, wakes_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *
helper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Helper() takes no arguments");
        return NULL;
    }
    Helper *self = (Helper *)type->tp_alloc(type, 0); /* zeroed: no poke, not parked, nothing found */
    if (self == NULL) {
        return NULL;
    }
    atomic_store(&self->delay, 0.005); /* the default interval, until `park` or `still` name the sampler's */
    atomic_store(&self->fire_due, INFINITY);
    self->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (self->timer < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
helper_dealloc(Helper *self)
{ /* no thread waits in it: the sampler holding it is gone */
    if (self->timer >= 0) {
        close(self->timer);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject HelperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pystrument._native.Helper",
    .tp_basicsize = sizeof(Helper),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("One sampler's compiled helper: its waits (still, park), pokes and what it found (progress)."),
    .tp_new = helper_new,
    .tp_dealloc = (destructor)helper_dealloc,
    .tp_methods = helper_methods,
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pystrument._native",
    "The sampler's compiled part (ticks at which no profiled thread moved, without the GIL).",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (PyType_Ready(&HelperType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Helper", (PyObject *)&HelperType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
