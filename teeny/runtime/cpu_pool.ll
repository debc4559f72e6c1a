; The native CPU worker pool of teeny's LLVM backend (x86-64 Linux): worker threads that spin, then sleep in futex,
; and the caller's side that splits a kernel's range across them. teeny/runtime/cpu_pool.py compiles this file
; with MCJIT and says why it works this way.
;
; Placeholders: before it parses this file, cpu_pool.py replaces each of these with the number of the same name
; (string.Template):
;   ${CTRL_BYTES}   bytes of one worker's control block
;   ${SPIN_CYCLES}  time-stamp counter ticks a worker spins after its last slice before it sleeps
;   ${COPY_PAGE}    copies split across cores are cut at multiples of this many bytes
;
; Control block of one worker (its own ${CTRL_BYTES} bytes, so the two sides don't share a cache line pair):
;   0: i32 go        generation of the last posted slice; the caller increments it to post one
;   4: i32 sleeping  1 while the worker sleeps in futex_wait on `go`
;   8: ptr fn        the kernel's packed entry: fn(ptr args, i64 start, i64 end)
;  16: ptr args      its i64 argument slots
;  24: i64 start, 32: i64 end (64-bit: a loop may pass 2^31 iterations)
;  40: i32 taken     generation of the last slice someone started (compare-and-swapped in by the worker or the caller)
;  64: i32 done      generation of the last finished slice (the worker's own cache line)
;
; The futex calls go through syscall(2) by number: 202 is futex on x86-64, 128 is FUTEX_WAIT | FUTEX_PRIVATE_FLAG,
; 129 is FUTEX_WAKE | FUTEX_PRIVATE_FLAG.
;
; Tracing (teeny/tracing.py): instead of a kernel's packed entry, cpu_pool.py posts @teeny_traced_slice, with a
; trace record in place of the arguments; the untraced path is not changed at all. The trace record:
;   0: ptr fn      the packed entry to run: fn(ptr args, i64 start, i64 end)
;   8: ptr args    its arguments
;  16: ptr stamps  ${STAMP_FIELDS} i64s per slice: start, end, the time it began and ended (CLOCK_MONOTONIC
;                  nanoseconds, the clock of Python's time.perf_counter_ns on Linux) and the thread id (gettid)
;  24: i64 next    the next free record in stamps (taken atomically: the caller's and the workers' slices end in any order)

declare i64 @syscall(i64, ...)
declare void @llvm.x86.sse2.pause()
declare i64 @llvm.readcyclecounter()
declare i64 @llvm.umin.i64(i64, i64)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare i32 @clock_gettime(i32, ptr)

; spin (with the CPU's pause hint) while the i32 at %p still holds %old, for at most %max_cycles time-stamp counter
; ticks (-1: no limit); the value it read last
define i32 @teeny_spin_while(ptr %p, i32 %old, i64 %max_cycles) {
entry:
  %t0 = call i64 @llvm.readcyclecounter()
  br label %spin
spin:
  %now = load atomic i32, ptr %p acquire, align 4
  %changed = icmp ne i32 %now, %old
  br i1 %changed, label %done, label %pause
pause:
  call void @llvm.x86.sse2.pause()
  %t = call i64 @llvm.readcyclecounter()
  %spun = sub i64 %t, %t0
  %tired = icmp ugt i64 %spun, %max_cycles
  br i1 %tired, label %done, label %spin
done:
  ret i32 %now
}

define void @teeny_worker(ptr %c) {
entry:
  %sleeping = getelementptr i8, ptr %c, i64 4
  br label %idle
idle:                                   ; waiting for generation != %seen
  ; it starts from generation 0, not from what `go` holds when the thread gets going: the first slice may have
  ; been posted before that
  %seen = phi i32 [ 0, %entry ], [ %posted, %run ], [ %seen, %woke ]
  %posted = call i32 @teeny_spin_while(ptr %c, i32 %seen, i64 ${SPIN_CYCLES})
  %has_job = icmp ne i32 %posted, %seen
  br i1 %has_job, label %run, label %sleep
sleep:                                  ; announce the sleep, then look once more (the caller does the mirror image)
  store atomic i32 1, ptr %sleeping seq_cst, align 4
  %again = load atomic i32, ptr %c seq_cst, align 4
  %nothing = icmp eq i32 %again, %seen
  br i1 %nothing, label %futex, label %woke
futex:                                  ; returns at once if `go` is no longer %seen
  %seen64 = zext i32 %seen to i64
  %r = call i64 (i64, ...) @syscall(i64 202, ptr %c, i64 128, i64 %seen64, ptr null)
  br label %woke
woke:
  store atomic i32 0, ptr %sleeping seq_cst, align 4
  br label %idle
run:                                    ; (unless the caller took the slice already: then it ran it too)
  %ran = call i1 @teeny_take_slice(ptr %c, i32 %posted)
  br label %idle
}

; the slice of generation %gen posted in control block %c, run here if no one took it yet: whether it ran here.
; A worker's slices are taken in order (the caller posts the next only when the last is done), so the slice is free
; only while `taken` still holds the generation before it. A worker that read `go` and was held up while the caller
; ran that slice and the next one itself finds `taken` past %gen and runs nothing (the fields are the next slice's).
define i1 @teeny_take_slice(ptr %c, i32 %gen) {
entry:
  %takenp = getelementptr i8, ptr %c, i64 40
  %last = sub i32 %gen, 1
  %swap = cmpxchg ptr %takenp, i32 %last, i32 %gen seq_cst seq_cst, align 4
  %free = extractvalue { i32, i1 } %swap, 1
  br i1 %free, label %take, label %done
take:
  %fnp = getelementptr i8, ptr %c, i64 8
  %argsp = getelementptr i8, ptr %c, i64 16
  %startp = getelementptr i8, ptr %c, i64 24
  %endp = getelementptr i8, ptr %c, i64 32
  %donep = getelementptr i8, ptr %c, i64 64
  %fn = load ptr, ptr %fnp, align 8
  %args = load ptr, ptr %argsp, align 8
  %start = load i64, ptr %startp, align 8
  %end = load i64, ptr %endp, align 8
  call void %fn(ptr %args, i64 %start, i64 %end)
  store atomic i32 %gen, ptr %donep release, align 4
  br label %done
done:
  ret i1 %free
}

; split [0, n) into %helpers + 1 slices: post slices 1.. to the workers, run slice 0 here, wait for the workers
define void @teeny_run_split(ptr %ctrls, i32 %helpers, ptr %fn, ptr %args, i64 %n64) {
entry:
  %parts32 = add i32 %helpers, 1
  %parts = sext i32 %parts32 to i64
  %first_end = sdiv i64 %n64, %parts
  %any = icmp sgt i32 %helpers, 0
  br i1 %any, label %post, label %mine
post:
  %w = phi i32 [ 0, %entry ], [ %w1, %posted ]
  %w64 = sext i32 %w to i64
  %cw = getelementptr [${CTRL_BYTES} x i8], ptr %ctrls, i64 %w64
  %lo_part = add i64 %w64, 1
  %hi_part = add i64 %w64, 2
  %lo_num = mul i64 %n64, %lo_part
  %hi_num = mul i64 %n64, %hi_part
  %lo = sdiv i64 %lo_num, %parts
  %hi = sdiv i64 %hi_num, %parts
  %fnp = getelementptr i8, ptr %cw, i64 8
  %argsp = getelementptr i8, ptr %cw, i64 16
  %startp = getelementptr i8, ptr %cw, i64 24
  %endp = getelementptr i8, ptr %cw, i64 32
  store ptr %fn, ptr %fnp, align 8
  store ptr %args, ptr %argsp, align 8
  store i64 %lo, ptr %startp, align 8
  store i64 %hi, ptr %endp, align 8
  %gen = load atomic i32, ptr %cw monotonic, align 4
  %next = add i32 %gen, 1
  store atomic i32 %next, ptr %cw seq_cst, align 4
  %sleepingp = getelementptr i8, ptr %cw, i64 4
  %asleep = load atomic i32, ptr %sleepingp seq_cst, align 4
  %must_wake = icmp ne i32 %asleep, 0
  br i1 %must_wake, label %wake, label %posted
wake:
  %r = call i64 (i64, ...) @syscall(i64 202, ptr %cw, i64 129, i64 1)
  br label %posted
posted:
  %w1 = add i32 %w, 1
  %more = icmp slt i32 %w1, %helpers
  br i1 %more, label %post, label %mine
mine:
  call void %fn(ptr %args, i64 0, i64 %first_end)
  br i1 %any, label %wait, label %done
wait:
  %v = phi i32 [ 0, %mine ], [ %v1, %finished ]
  %v64 = sext i32 %v to i64
  %cv = getelementptr [${CTRL_BYTES} x i8], ptr %ctrls, i64 %v64
  %want = load atomic i32, ptr %cv monotonic, align 4
  %donep = getelementptr i8, ptr %cv, i64 64
  %finished_already = load atomic i32, ptr %donep acquire, align 4
  %is_done = icmp eq i32 %finished_already, %want
  br i1 %is_done, label %finished, label %try_take
try_take:                               ; a slice its worker hasn't started: run it here
  %took = call i1 @teeny_take_slice(ptr %cv, i32 %want)
  br i1 %took, label %finished, label %check
check:                                  ; its worker runs it: wait until it marks it done
  %last_done = phi i32 [ %finished_already, %try_take ], [ %got, %check ]
  %got = call i32 @teeny_spin_while(ptr %donep, i32 %last_done, i64 -1)
  %ready = icmp eq i32 %got, %want
  br i1 %ready, label %finished, label %check
finished:
  %v1 = add i32 %v, 1
  %more_wait = icmp slt i32 %v1, %helpers
  br i1 %more_wait, label %wait, label %done
done:
  ret void
}

; a packed entry like a kernel's, for copies: args = [dst, src, nbytes]; copies pages [start, end) of ${COPY_PAGE} bytes
define void @teeny_copy_pages(ptr %args, i64 %start64, i64 %end64) {
entry:
  %dst = load ptr, ptr %args, align 8
  %srcp = getelementptr i64, ptr %args, i64 1
  %src = load ptr, ptr %srcp, align 8
  %nbytesp = getelementptr i64, ptr %args, i64 2
  %nbytes = load i64, ptr %nbytesp, align 8
  %lo = mul i64 %start64, ${COPY_PAGE}
  %hi_pages = mul i64 %end64, ${COPY_PAGE}
  %hi = call i64 @llvm.umin.i64(i64 %hi_pages, i64 %nbytes)
  %any = icmp ult i64 %lo, %hi
  br i1 %any, label %copy, label %done
copy:
  %len = sub i64 %hi, %lo
  %d = getelementptr i8, ptr %dst, i64 %lo
  %s = getelementptr i8, ptr %src, i64 %lo
  call void @llvm.memcpy.p0.p0.i64(ptr %d, ptr %s, i64 %len, i1 false)
  br label %done
done:
  ret void
}

; ---- tracing ----

; CLOCK_MONOTONIC (1) in nanoseconds
define i64 @teeny_now_ns() {
entry:
  %ts = alloca { i64, i64 }, align 8
  %r = call i32 @clock_gettime(i32 1, ptr %ts)
  %secp = getelementptr { i64, i64 }, ptr %ts, i64 0, i32 0
  %nsecp = getelementptr { i64, i64 }, ptr %ts, i64 0, i32 1
  %sec = load i64, ptr %secp, align 8
  %nsec = load i64, ptr %nsecp, align 8
  %sec_ns = mul i64 %sec, 1000000000
  %now = add i64 %sec_ns, %nsec
  ret i64 %now
}

; a packed entry that runs the one in trace record %rec over [start, end) and notes when and on which thread
define void @teeny_traced_slice(ptr %rec, i64 %start, i64 %end) {
entry:
  %argsp = getelementptr i8, ptr %rec, i64 8
  %stampsp = getelementptr i8, ptr %rec, i64 16
  %nextp = getelementptr i8, ptr %rec, i64 24
  %fn = load ptr, ptr %rec, align 8
  %args = load ptr, ptr %argsp, align 8
  %began = call i64 @teeny_now_ns()
  call void %fn(ptr %args, i64 %start, i64 %end)
  %ended = call i64 @teeny_now_ns()
  %thread = call i64 (i64, ...) @syscall(i64 186)  ; gettid
  %slot = atomicrmw add ptr %nextp, i64 1 seq_cst
  %stamps = load ptr, ptr %stampsp, align 8
  %first = mul i64 %slot, ${STAMP_FIELDS}
  %p0 = getelementptr i64, ptr %stamps, i64 %first
  %p1 = getelementptr i64, ptr %p0, i64 1
  %p2 = getelementptr i64, ptr %p0, i64 2
  %p3 = getelementptr i64, ptr %p0, i64 3
  %p4 = getelementptr i64, ptr %p0, i64 4
  store i64 %start, ptr %p0, align 8
  store i64 %end, ptr %p1, align 8
  store i64 %began, ptr %p2, align 8
  store i64 %ended, ptr %p3, align 8
  store i64 %thread, ptr %p4, align 8
  ret void
}
