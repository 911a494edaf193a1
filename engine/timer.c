/*
** timer.c: the run's clock (real, or virtual in a dry-run) and the timer
** heap on it. The scheduler (scheduler.c) arms one libuv timer for the
** nearest deadline in real mode and jumps the virtual clock to it in a
** dry-run; both fire due timers through sched_timers_fire_due.
*/
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

/* {====================================================== timer heap */

/* Work for the scheduler appeared inside uv_run (from a libuv callback):
** make that uv_run poll without blocking and return. uv_stop's flag is
** cleared when uv_run returns, so it is set only while inside one: a stale
** flag would turn the next uv_run, teardown's included, into a no-op. */
void sched_poll_no_longer(rb_sched *s) {
  if (s->polling) uv_stop(s->loop);
}

static int timer_less(const rb_timer *a, const rb_timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_swap(rb_sched *s, int i, int j) {
  rb_timer *t = s->heap[i];
  s->heap[i] = s->heap[j];
  s->heap[j] = t;
  s->heap[i]->heap_idx = i;
  s->heap[j]->heap_idx = j;
}

static void heap_up(rb_sched *s, int i) {
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!timer_less(s->heap[i], s->heap[p])) break;
    heap_swap(s, i, p);
    i = p;
  }
}

static void heap_down(rb_sched *s, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->nheap && timer_less(s->heap[l], s->heap[m])) m = l;
    if (r < s->nheap && timer_less(s->heap[r], s->heap[m])) m = r;
    if (m == i) break;
    heap_swap(s, i, m);
    i = m;
  }
}

void rb_timer_init(rb_timer *tm, rb_timer_cb cb, void *data) {
  memset(tm, 0, sizeof *tm);
  tm->heap_idx = -1;
  tm->cb = cb;
  tm->data = data;
}

void rb_timer_start(rb_sched *s, rb_timer *tm, uint64_t delay_us) {
  if (tm->heap_idx >= 0) rb_timer_stop(s, tm);
  if (s->nheap == s->capheap) {
    int cap = s->capheap ? s->capheap * 2 : 64;
    rb_timer **h = realloc(s->heap, (size_t)cap * sizeof *h);
    if (h == NULL) abort(); /* out of memory in a scheduler path: nothing sane to do */
    s->heap = h;
    s->capheap = cap;
  }
  tm->due = sched_now(s) + delay_us;
  tm->seq = s->seq++;
  tm->heap_idx = s->nheap;
  s->heap[s->nheap++] = tm;
  heap_up(s, tm->heap_idx);
  /* a new nearest deadline, set from a libuv callback, must not wait for
  ** the poll in progress: sched_run re-arms its libuv timer */
  if (s->heap[0] == tm) sched_poll_no_longer(s);
}

void rb_timer_stop(rb_sched *s, rb_timer *tm) {
  int i = tm->heap_idx;
  if (i < 0) return;
  s->nheap--;
  if (i != s->nheap) {
    heap_swap(s, i, s->nheap);
    heap_down(s, i);
    heap_up(s, i);
  }
  tm->heap_idx = -1;
}

/* Fires every timer whose deadline has passed; returns how many fired. */
int sched_timers_fire_due(rb_sched *s) {
  int n = 0;
  uint64_t now = sched_now(s);
  while (s->nheap > 0 && s->heap[0]->due <= now) {
    rb_timer *tm = s->heap[0];
    rb_timer_stop(s, tm);
    tm->cb(tm);
    n++;
  }
  return n;
}

/* }====================================================== */

/* {====================================================== clock */

uint64_t sched_now(rb_sched *s) {
  if (s->virtual_clock) return s->vnow;
  return (uv_hrtime() - s->real_start) / 1000;
}

double sched_wallclock(rb_sched *s) {
  return s->epoch + (double)sched_now(s) / 1e6;
}

/* }====================================================== */
