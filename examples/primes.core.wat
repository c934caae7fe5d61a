;; The same sieve as primes.wat, as a core module the way Wizer takes it:
;; `wizer-initialize` sieves the primes below 2,000,000 into a 2 MB table
;; (one byte per number) and counts them; `count` and `is-prime` read it.
(module $primes
  (memory (export "memory") 1)
  (global $limit i32 (i32.const 2000000))
  (global $count (mut i32) (i32.const 0))
  (global $ready (mut i32) (i32.const 0))

  ;; Table at address 0: byte n is 1 when n is prime.
  (func (export "wizer-initialize") (local $i i32) (local $j i32)
    (if (global.get $ready) (then (return)))
    (drop (memory.grow (i32.const 31)))
    (memory.fill (i32.const 2) (i32.const 1) (i32.sub (global.get $limit) (i32.const 2)))
    (local.set $i (i32.const 2))
    (block $done
      (loop $outer
        (br_if $done (i32.gt_u (i32.mul (local.get $i) (local.get $i)) (global.get $limit)))
        (if (i32.load8_u (local.get $i))
          (then
            (local.set $j (i32.mul (local.get $i) (local.get $i)))
            (block $end
              (loop $inner
                (br_if $end (i32.ge_u (local.get $j) (global.get $limit)))
                (i32.store8 (local.get $j) (i32.const 0))
                (local.set $j (i32.add (local.get $j) (local.get $i)))
                (br $inner)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (local.set $i (i32.const 0))
    (block $counted
      (loop $count
        (br_if $counted (i32.ge_u (local.get $i) (global.get $limit)))
        (global.set $count (i32.add (global.get $count) (i32.load8_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $count)))
    (global.set $ready (i32.const 1)))

  (func (export "is-prime") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (global.get $limit))
      (then (i32.load8_u (local.get $n)))
      (else (unreachable))))
  (func (export "count") (result i32) (global.get $count)))
