;; kernels.wat: the SIMD128 kernels of the module's CPU path (wasm/kernels/doc.go).
;;
;; A companion module that works on the Go module's memory: the host imports
;; that memory as env.memory and forwards the Go module's `kernels` imports
;; to these exports. Every pointer is a byte offset into that memory; every
;; count is in float32 elements. Assemble with `wat2wasm kernels.wat -o
;; kernels.wasm` (wabt; SIMD128 needs no flag); `go test ./wasm/kernels`
;; fails when the committed kernels.wasm is not what this file assembles to.
;;
;; Summation order, which the plain-Go reference (model.GoKernels) follows
;; operation for operation, so that results are bit-identical:
;;   dot(w, x) over n elements: four lanes, lane l sums w[i]·x[i] for
;;     i ≡ l (mod 4), i < n&^3, in increasing i, from 0; then
;;     (lane0 + lane2) + (lane1 + lane3); then the n mod 4 last products, one
;;     by one. Every product is rounded before it is added (no fused multiply-add).
;;   transposed products sum over their rows in increasing order, from 0.
;;
;; Loads of a group from one base are issued highest offset first: wazero
;; then checks bounds once for the group.
(module
  (import "env" "memory" (memory 0))

  ;; version is the kernel ABI version (wasm/kernels.Version).
  (func (export "version") (result i32) (i32.const 2))

  ;; hsum is (v0 + v2) + (v1 + v3).
  (func $hsum (param $v v128) (result f32)
    (local $u v128)
    (local.set $u (f32x4.add (local.get $v)
      (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
    (f32.add (f32x4.extract_lane 0 (local.get $u)) (f32x4.extract_lane 1 (local.get $u))))

  ;; tail adds w[i]·x[i] to s for i = from … cols-1, one by one.
  (func $tail (param $s f32) (param $w i32) (param $x i32) (param $from i32) (param $cols i32) (result f32)
    (local $i i32)
    (local.set $i (i32.shl (local.get $from) (i32.const 2)))
    (local.set $cols (i32.shl (local.get $cols) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $cols)))
        (local.set $s (f32.add (local.get $s)
          (f32.mul (f32.load (i32.add (local.get $w) (local.get $i))) (f32.load (i32.add (local.get $x) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next)))
    (local.get $s))

  ;; dot is Σ w[i]·x[i] over cols elements, in the order above.
  (func $dot (param $w i32) (param $x i32) (param $cols i32) (result f32)
    (local $c i32) (local $c4 i32) (local $a v128)
    (local.set $c4 (i32.shl (i32.and (local.get $cols) (i32.const -4)) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $c) (local.get $c4)))
        (local.set $a (f32x4.add (local.get $a)
          (f32x4.mul (v128.load (i32.add (local.get $w) (local.get $c))) (v128.load (i32.add (local.get $x) (local.get $c))))))
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $next)))
    (call $tail (call $hsum (local.get $a)) (local.get $w) (local.get $x)
      (i32.and (local.get $cols) (i32.const -4)) (local.get $cols)))

  ;; matvec sets out[r] = dot(w[r·stride …], x) for r < rows: W [rows][stride],
  ;; of which the first cols columns are used. Four rows at a time share each
  ;; load of x, 32 columns (8 vectors) per step, one accumulator per row; a
  ;; step of one vector takes the columns left, then $tail the last cols mod 4.
  ;; (In wazero, 4 rows × 8 vectors ran faster than 8 × 4, 8 × 2, 2 × 8,
  ;; 4 × 4 and 4 × 16 at 4096 × 1024 on the development machine.)
  (func $matvec (export "matvec") (param $out i32) (param $w i32) (param $x i32) (param $rows i32) (param $cols i32) (param $stride i32)
    (local $o i32) (local $end i32) (local $row i32) (local $n4 i32) (local $c i32) (local $c32 i32) (local $c4 i32)
    (local $q i32) (local $xp i32) (local $t v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $x4 v128) (local $x5 v128) (local $x6 v128) (local $x7 v128)
    (local.set $stride (i32.shl (local.get $stride) (i32.const 2)))
    (local.set $n4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $c32 (i32.shl (i32.and (local.get $cols) (i32.const -32)) (i32.const 2)))
    (local.set $c4 (i32.shl (local.get $n4) (i32.const 2)))
    (local.set $row (local.get $w))
    (local.set $o (local.get $out))
    (local.set $end (i32.add (local.get $out) (i32.shl (i32.and (local.get $rows) (i32.const -4)) (i32.const 2))))
    (block $done4
      (loop $rows4
        (br_if $done4 (i32.ge_u (local.get $o) (local.get $end)))
        (local.set $a0 (v128.const f32x4 0 0 0 0))
        (local.set $a1 (v128.const f32x4 0 0 0 0))
        (local.set $a2 (v128.const f32x4 0 0 0 0))
        (local.set $a3 (v128.const f32x4 0 0 0 0))
        (local.set $c (i32.const 0))
        (block $done32
          (loop $cols32
            (br_if $done32 (i32.ge_u (local.get $c) (local.get $c32)))
            (local.set $xp (i32.add (local.get $x) (local.get $c)))
            (local.set $x7 (v128.load offset=112 (local.get $xp)))
            (local.set $x6 (v128.load offset=96 (local.get $xp)))
            (local.set $x5 (v128.load offset=80 (local.get $xp)))
            (local.set $x4 (v128.load offset=64 (local.get $xp)))
            (local.set $x3 (v128.load offset=48 (local.get $xp)))
            (local.set $x2 (v128.load offset=32 (local.get $xp)))
            (local.set $x1 (v128.load offset=16 (local.get $xp)))
            (local.set $x0 (v128.load offset=0 (local.get $xp)))
            (local.set $q (i32.add (local.get $row) (local.get $c)))
            (local.set $t (v128.load offset=112 (local.get $q)))
            (local.set $a0 (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (local.get $a0)
              (f32x4.mul (v128.load offset=0 (local.get $q)) (local.get $x0)))
              (f32x4.mul (v128.load offset=16 (local.get $q)) (local.get $x1)))
              (f32x4.mul (v128.load offset=32 (local.get $q)) (local.get $x2)))
              (f32x4.mul (v128.load offset=48 (local.get $q)) (local.get $x3)))
              (f32x4.mul (v128.load offset=64 (local.get $q)) (local.get $x4)))
              (f32x4.mul (v128.load offset=80 (local.get $q)) (local.get $x5)))
              (f32x4.mul (v128.load offset=96 (local.get $q)) (local.get $x6)))
              (f32x4.mul (local.get $t) (local.get $x7))))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (local.set $t (v128.load offset=112 (local.get $q)))
            (local.set $a1 (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (local.get $a1)
              (f32x4.mul (v128.load offset=0 (local.get $q)) (local.get $x0)))
              (f32x4.mul (v128.load offset=16 (local.get $q)) (local.get $x1)))
              (f32x4.mul (v128.load offset=32 (local.get $q)) (local.get $x2)))
              (f32x4.mul (v128.load offset=48 (local.get $q)) (local.get $x3)))
              (f32x4.mul (v128.load offset=64 (local.get $q)) (local.get $x4)))
              (f32x4.mul (v128.load offset=80 (local.get $q)) (local.get $x5)))
              (f32x4.mul (v128.load offset=96 (local.get $q)) (local.get $x6)))
              (f32x4.mul (local.get $t) (local.get $x7))))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (local.set $t (v128.load offset=112 (local.get $q)))
            (local.set $a2 (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (local.get $a2)
              (f32x4.mul (v128.load offset=0 (local.get $q)) (local.get $x0)))
              (f32x4.mul (v128.load offset=16 (local.get $q)) (local.get $x1)))
              (f32x4.mul (v128.load offset=32 (local.get $q)) (local.get $x2)))
              (f32x4.mul (v128.load offset=48 (local.get $q)) (local.get $x3)))
              (f32x4.mul (v128.load offset=64 (local.get $q)) (local.get $x4)))
              (f32x4.mul (v128.load offset=80 (local.get $q)) (local.get $x5)))
              (f32x4.mul (v128.load offset=96 (local.get $q)) (local.get $x6)))
              (f32x4.mul (local.get $t) (local.get $x7))))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (local.set $t (v128.load offset=112 (local.get $q)))
            (local.set $a3 (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (local.get $a3)
              (f32x4.mul (v128.load offset=0 (local.get $q)) (local.get $x0)))
              (f32x4.mul (v128.load offset=16 (local.get $q)) (local.get $x1)))
              (f32x4.mul (v128.load offset=32 (local.get $q)) (local.get $x2)))
              (f32x4.mul (v128.load offset=48 (local.get $q)) (local.get $x3)))
              (f32x4.mul (v128.load offset=64 (local.get $q)) (local.get $x4)))
              (f32x4.mul (v128.load offset=80 (local.get $q)) (local.get $x5)))
              (f32x4.mul (v128.load offset=96 (local.get $q)) (local.get $x6)))
              (f32x4.mul (local.get $t) (local.get $x7))))
            (local.set $c (i32.add (local.get $c) (i32.const 128)))
            (br $cols32)))
        (block $done1
          (loop $cols1
            (br_if $done1 (i32.ge_u (local.get $c) (local.get $c4)))
            (local.set $x0 (v128.load (i32.add (local.get $x) (local.get $c))))
            (local.set $q (i32.add (local.get $row) (local.get $c)))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (local.get $q)) (local.get $x0))))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load (local.get $q)) (local.get $x0))))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load (local.get $q)) (local.get $x0))))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load (local.get $q)) (local.get $x0))))
            (local.set $c (i32.add (local.get $c) (i32.const 16)))
            (br $cols1)))
        ;; The four rows' sums, (l0 + l2) + (l1 + l3) each, in one vector:
        ;; $a0 = [a0₀+a0₂, a0₁+a0₃, a1₀+a1₂, a1₁+a1₃], $a2 likewise for rows 2
        ;; and 3, then the pairs added. $tail only when cols is not a multiple of 4.
        (local.set $a0 (f32x4.add
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $a1))
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $a1))))
        (local.set $a2 (f32x4.add
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a2) (local.get $a3))
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a2) (local.get $a3))))
        (v128.store (local.get $o) (f32x4.add
          (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a0) (local.get $a2))
          (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $a0) (local.get $a2))))
        (if (i32.ne (local.get $n4) (local.get $cols))
          (then
            (local.set $q (local.get $row))
            (f32.store offset=0 (local.get $o) (call $tail (f32.load offset=0 (local.get $o)) (local.get $q) (local.get $x) (local.get $n4) (local.get $cols)))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (f32.store offset=4 (local.get $o) (call $tail (f32.load offset=4 (local.get $o)) (local.get $q) (local.get $x) (local.get $n4) (local.get $cols)))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (f32.store offset=8 (local.get $o) (call $tail (f32.load offset=8 (local.get $o)) (local.get $q) (local.get $x) (local.get $n4) (local.get $cols)))
            (local.set $q (i32.add (local.get $q) (local.get $stride)))
            (f32.store offset=12 (local.get $o) (call $tail (f32.load offset=12 (local.get $o)) (local.get $q) (local.get $x) (local.get $n4) (local.get $cols)))))
        (local.set $row (i32.add (local.get $row) (i32.shl (local.get $stride) (i32.const 2))))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $rows4)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $rows) (i32.const 2))))
    (block $done
      (loop $rows1
        (br_if $done (i32.ge_u (local.get $o) (local.get $end)))
        (f32.store (local.get $o) (call $dot (local.get $row) (local.get $x) (local.get $cols)))
        (local.set $row (i32.add (local.get $row) (local.get $stride)))
        (local.set $o (i32.add (local.get $o) (i32.const 4)))
        (br $rows1))))

  ;; matvec_t sets out[i] = Σ_j x[j]·w[j·stride + i] for i < n, j < k, summed
  ;; over j in increasing order from 0: Wᵀ·x for W [k][stride]. It walks the
  ;; rows in chunks of 32 (so that a wide matrix is read row by row, not in
  ;; columns 16 wide), each chunk continuing the sums the last one stored.
  (func $matvec_t (export "matvec_t") (param $out i32) (param $w i32) (param $x i32) (param $n i32) (param $k i32) (param $stride i32)
    (local $j i32)
    (call $mtv (local.get $out) (local.get $w) (local.get $x) (local.get $n)
      (select (local.get $k) (i32.const 32) (i32.lt_u (local.get $k) (i32.const 32))) (local.get $stride) (i32.const 0))
    (local.set $j (i32.const 32))
    (block $done
      (loop $chunks
        (br_if $done (i32.ge_u (local.get $j) (local.get $k)))
        (call $mtv (local.get $out)
          (i32.add (local.get $w) (i32.shl (i32.mul (local.get $j) (local.get $stride)) (i32.const 2)))
          (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2)))
          (local.get $n)
          (select (i32.sub (local.get $k) (local.get $j)) (i32.const 32) (i32.lt_u (i32.sub (local.get $k) (local.get $j)) (i32.const 32)))
          (local.get $stride) (i32.const 1))
        (local.set $j (i32.add (local.get $j) (i32.const 32)))
        (br $chunks))))

  ;; mtv is matvec_t over the k rows given, starting from out's values when
  ;; acc is 1 and from 0 when it is 0. Sixteen outputs at a time stay in
  ;; registers while the rows go by.
  (func $mtv (param $out i32) (param $w i32) (param $x i32) (param $n i32) (param $k i32) (param $stride i32) (param $acc i32)
    (local $i i32) (local $n16 i32) (local $n4 i32) (local $nb i32) (local $p i32) (local $xp i32) (local $xend i32)
    (local $s v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $t3 v128)
    (local $f f32)
    (local.set $stride (i32.shl (local.get $stride) (i32.const 2)))
    (local.set $xend (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2))))
    (local.set $n16 (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2)))
    (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (block $done16
      (loop $outs16
        (br_if $done16 (i32.ge_u (local.get $i) (local.get $n16)))
        (local.set $a0 (if (result v128) (local.get $acc) (then (v128.load offset=0 (i32.add (local.get $out) (local.get $i)))) (else (v128.const f32x4 0 0 0 0))))
        (local.set $a1 (if (result v128) (local.get $acc) (then (v128.load offset=16 (i32.add (local.get $out) (local.get $i)))) (else (v128.const f32x4 0 0 0 0))))
        (local.set $a2 (if (result v128) (local.get $acc) (then (v128.load offset=32 (i32.add (local.get $out) (local.get $i)))) (else (v128.const f32x4 0 0 0 0))))
        (local.set $a3 (if (result v128) (local.get $acc) (then (v128.load offset=48 (i32.add (local.get $out) (local.get $i)))) (else (v128.const f32x4 0 0 0 0))))
        (local.set $p (i32.add (local.get $w) (local.get $i)))
        (local.set $xp (local.get $x))
        (block $donej
          (loop $rows
            (br_if $donej (i32.ge_u (local.get $xp) (local.get $xend)))
            (local.set $s (v128.load32_splat (local.get $xp)))
            (local.set $t3 (v128.load offset=48 (local.get $p)))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (local.get $p)) (local.get $s))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load offset=16 (local.get $p)) (local.get $s))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load offset=32 (local.get $p)) (local.get $s))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $t3) (local.get $s))))
            (local.set $p (i32.add (local.get $p) (local.get $stride)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (br $rows)))
        (local.set $p (i32.add (local.get $out) (local.get $i)))
        (v128.store offset=48 (local.get $p) (local.get $a3))
        (v128.store (local.get $p) (local.get $a0))
        (v128.store offset=16 (local.get $p) (local.get $a1))
        (v128.store offset=32 (local.get $p) (local.get $a2))
        (local.set $i (i32.add (local.get $i) (i32.const 64)))
        (br $outs16)))
    (block $done4
      (loop $outs4
        (br_if $done4 (i32.ge_u (local.get $i) (local.get $n4)))
        (local.set $a0 (if (result v128) (local.get $acc) (then (v128.load offset=0 (i32.add (local.get $out) (local.get $i)))) (else (v128.const f32x4 0 0 0 0))))
        (local.set $p (i32.add (local.get $w) (local.get $i)))
        (local.set $xp (local.get $x))
        (block $donej
          (loop $rows
            (br_if $donej (i32.ge_u (local.get $xp) (local.get $xend)))
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul (v128.load (local.get $p)) (v128.load32_splat (local.get $xp)))))
            (local.set $p (i32.add (local.get $p) (local.get $stride)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (br $rows)))
        (v128.store (i32.add (local.get $out) (local.get $i)) (local.get $a0))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $outs4)))
    (block $done1
      (loop $outs1
        (br_if $done1 (i32.ge_u (local.get $i) (local.get $nb)))
        (local.set $f (if (result f32) (local.get $acc) (then (f32.load (i32.add (local.get $out) (local.get $i)))) (else (f32.const 0))))
        (local.set $p (i32.add (local.get $w) (local.get $i)))
        (local.set $xp (local.get $x))
        (block $donej
          (loop $rows
            (br_if $donej (i32.ge_u (local.get $xp) (local.get $xend)))
            (local.set $f (f32.add (local.get $f) (f32.mul (f32.load (local.get $p)) (f32.load (local.get $xp)))))
            (local.set $p (i32.add (local.get $p) (local.get $stride)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (br $rows)))
        (f32.store (i32.add (local.get $out) (local.get $i)) (local.get $f))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $outs1))))

  ;; matmul sets out[t][r] = dot(w[r], x[t]) for t < tokens, r < rows: the
  ;; products of matvec for several tokens at once, out [tokens][rows], x
  ;; [tokens][cols], W [rows][cols]. Three rows × three tokens per block (nine
  ;; accumulators), so each load of W serves three tokens and each load of x
  ;; three rows; rows left over go through $dot, tokens left over through matvec.
  (func (export "matmul") (param $out i32) (param $w i32) (param $x i32) (param $tokens i32) (param $rows i32) (param $cols i32)
    (local $t i32) (local $r i32) (local $rowb i32) (local $outb i32) (local $c i32) (local $c4 i32) (local $n4 i32)
    (local $wb i32) (local $xb i32) (local $o i32) (local $q i32) (local $j i32) (local $wv v128)
    (local $a00 v128) (local $a01 v128) (local $a02 v128) (local $a10 v128) (local $a11 v128) (local $a12 v128) (local $a20 v128) (local $a21 v128) (local $a22 v128)
    (local $x0 v128) (local $x1 v128) (local $x2 v128)
    (local.set $rowb (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $outb (i32.shl (local.get $rows) (i32.const 2)))
    (local.set $n4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $c4 (i32.shl (local.get $n4) (i32.const 2)))
    (block $donet
      (loop $tokens3
        (br_if $donet (i32.gt_u (i32.add (local.get $t) (i32.const 3)) (local.get $tokens)))
        (local.set $xb (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $rowb))))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $t) (local.get $outb))))
        (local.set $r (i32.const 0))
        (block $doner
          (loop $rows3
            (br_if $doner (i32.gt_u (i32.add (local.get $r) (i32.const 3)) (local.get $rows)))
            (local.set $wb (i32.add (local.get $w) (i32.mul (local.get $r) (local.get $rowb))))
            (local.set $a00 (v128.const f32x4 0 0 0 0))
            (local.set $a01 (v128.const f32x4 0 0 0 0))
            (local.set $a02 (v128.const f32x4 0 0 0 0))
            (local.set $a10 (v128.const f32x4 0 0 0 0))
            (local.set $a11 (v128.const f32x4 0 0 0 0))
            (local.set $a12 (v128.const f32x4 0 0 0 0))
            (local.set $a20 (v128.const f32x4 0 0 0 0))
            (local.set $a21 (v128.const f32x4 0 0 0 0))
            (local.set $a22 (v128.const f32x4 0 0 0 0))
            (local.set $c (i32.const 0))
            (block $donec
              (loop $cols4
                (br_if $donec (i32.ge_u (local.get $c) (local.get $c4)))
                (local.set $q (i32.add (local.get $xb) (local.get $c)))
                (local.set $x0 (v128.load (local.get $q)))
                (local.set $q (i32.add (local.get $q) (local.get $rowb)))
                (local.set $x1 (v128.load (local.get $q)))
                (local.set $q (i32.add (local.get $q) (local.get $rowb)))
                (local.set $x2 (v128.load (local.get $q)))
                (local.set $q (i32.add (local.get $wb) (local.get $c)))
                (local.set $wv (v128.load (local.get $q)))
                (local.set $a00 (f32x4.add (local.get $a00) (f32x4.mul (local.get $wv) (local.get $x0))))
                (local.set $a01 (f32x4.add (local.get $a01) (f32x4.mul (local.get $wv) (local.get $x1))))
                (local.set $a02 (f32x4.add (local.get $a02) (f32x4.mul (local.get $wv) (local.get $x2))))
                (local.set $q (i32.add (local.get $q) (local.get $rowb)))
                (local.set $wv (v128.load (local.get $q)))
                (local.set $a10 (f32x4.add (local.get $a10) (f32x4.mul (local.get $wv) (local.get $x0))))
                (local.set $a11 (f32x4.add (local.get $a11) (f32x4.mul (local.get $wv) (local.get $x1))))
                (local.set $a12 (f32x4.add (local.get $a12) (f32x4.mul (local.get $wv) (local.get $x2))))
                (local.set $q (i32.add (local.get $q) (local.get $rowb)))
                (local.set $wv (v128.load (local.get $q)))
                (local.set $a20 (f32x4.add (local.get $a20) (f32x4.mul (local.get $wv) (local.get $x0))))
                (local.set $a21 (f32x4.add (local.get $a21) (f32x4.mul (local.get $wv) (local.get $x1))))
                (local.set $a22 (f32x4.add (local.get $a22) (f32x4.mul (local.get $wv) (local.get $x2))))
                (local.set $c (i32.add (local.get $c) (i32.const 16)))
                (br $cols4)))
            (local.set $q (i32.add (i32.add (local.get $o) (i32.mul (i32.const 0) (local.get $outb))) (i32.shl (local.get $r) (i32.const 2))))
            (f32.store offset=0 (local.get $q) (call $tail (call $hsum (local.get $a00))
              (i32.add (local.get $wb) (i32.mul (i32.const 0) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 0) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (f32.store offset=4 (local.get $q) (call $tail (call $hsum (local.get $a10))
              (i32.add (local.get $wb) (i32.mul (i32.const 1) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 0) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (f32.store offset=8 (local.get $q) (call $tail (call $hsum (local.get $a20))
              (i32.add (local.get $wb) (i32.mul (i32.const 2) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 0) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (local.set $q (i32.add (i32.add (local.get $o) (i32.mul (i32.const 1) (local.get $outb))) (i32.shl (local.get $r) (i32.const 2))))
            (f32.store offset=0 (local.get $q) (call $tail (call $hsum (local.get $a01))
              (i32.add (local.get $wb) (i32.mul (i32.const 0) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 1) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (f32.store offset=4 (local.get $q) (call $tail (call $hsum (local.get $a11))
              (i32.add (local.get $wb) (i32.mul (i32.const 1) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 1) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (f32.store offset=8 (local.get $q) (call $tail (call $hsum (local.get $a21))
              (i32.add (local.get $wb) (i32.mul (i32.const 2) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 1) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (local.set $q (i32.add (i32.add (local.get $o) (i32.mul (i32.const 2) (local.get $outb))) (i32.shl (local.get $r) (i32.const 2))))
            (f32.store offset=0 (local.get $q) (call $tail (call $hsum (local.get $a02))
              (i32.add (local.get $wb) (i32.mul (i32.const 0) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 2) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (f32.store offset=4 (local.get $q) (call $tail (call $hsum (local.get $a12))
              (i32.add (local.get $wb) (i32.mul (i32.const 1) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 2) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (f32.store offset=8 (local.get $q) (call $tail (call $hsum (local.get $a22))
              (i32.add (local.get $wb) (i32.mul (i32.const 2) (local.get $rowb)))
              (i32.add (local.get $xb) (i32.mul (i32.const 2) (local.get $rowb))) (local.get $n4) (local.get $cols)))
            (local.set $r (i32.add (local.get $r) (i32.const 3)))
            (br $rows3)))
        (block $doner1
          (loop $rows1
            (br_if $doner1 (i32.ge_u (local.get $r) (local.get $rows)))
            (local.set $wb (i32.add (local.get $w) (i32.mul (local.get $r) (local.get $rowb))))
            (local.set $j (i32.const 0))
            (block $donej
              (loop $toks
                (br_if $donej (i32.ge_u (local.get $j) (i32.const 3)))
                (f32.store (i32.add (i32.add (local.get $o) (i32.mul (local.get $j) (local.get $outb))) (i32.shl (local.get $r) (i32.const 2)))
                  (call $dot (local.get $wb) (i32.add (local.get $xb) (i32.mul (local.get $j) (local.get $rowb))) (local.get $cols)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $toks)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $rows1)))
        (local.set $t (i32.add (local.get $t) (i32.const 3)))
        (br $tokens3)))
    (block $done
      (loop $tokens1
        (br_if $done (i32.ge_u (local.get $t) (local.get $tokens)))
        (call $matvec
          (i32.add (local.get $out) (i32.mul (local.get $t) (local.get $outb)))
          (local.get $w)
          (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $rowb)))
          (local.get $rows) (local.get $cols) (local.get $cols))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $tokens1))))

  ;; matmul_t sets out[t][i] = Σ_j x[t][j]·w[j][i] for t < tokens, i < n,
  ;; j < k, summed over j in increasing order from 0: the products of matvec_t
  ;; for several tokens at once, out [tokens][n], x [tokens][k], W [k][n].
  ;; Eight outputs × two tokens per block; a last odd token goes through matvec_t.
  (func (export "matmul_t") (param $out i32) (param $w i32) (param $x i32) (param $tokens i32) (param $n i32) (param $k i32)
    (local $t i32) (local $i i32) (local $n8 i32) (local $nb i32) (local $kb i32)
    (local $p i32) (local $xp i32) (local $yp i32) (local $xend i32) (local $o i32)
    (local $s v128) (local $u v128) (local $a0 v128) (local $a1 v128) (local $b0 v128) (local $b1 v128) (local $t1 v128)
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $kb (i32.shl (local.get $k) (i32.const 2)))
    (local.set $n8 (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2)))
    (block $donet
      (loop $tokens2
        (br_if $donet (i32.ge_u (i32.add (local.get $t) (i32.const 1)) (local.get $tokens)))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $t) (local.get $nb))))
        (local.set $i (i32.const 0))
        (block $done8
          (loop $outs8
            (br_if $done8 (i32.ge_u (local.get $i) (local.get $n8)))
            (local.set $a0 (v128.const f32x4 0 0 0 0))
            (local.set $a1 (v128.const f32x4 0 0 0 0))
            (local.set $b0 (v128.const f32x4 0 0 0 0))
            (local.set $b1 (v128.const f32x4 0 0 0 0))
            (local.set $p (i32.add (local.get $w) (local.get $i)))
            (local.set $xp (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $kb))))
            (local.set $xend (i32.add (local.get $xp) (local.get $kb)))
            (block $donej
              (loop $rows
                (br_if $donej (i32.ge_u (local.get $xp) (local.get $xend)))
                (local.set $s (v128.load32_splat (local.get $xp)))
                (local.set $u (v128.load32_splat (i32.add (local.get $xp) (local.get $kb))))
                (local.set $t1 (v128.load offset=16 (local.get $p)))
                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (local.get $p)) (local.get $s))))
                (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (v128.load (local.get $p)) (local.get $u))))
                (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $t1) (local.get $s))))
                (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $t1) (local.get $u))))
                (local.set $p (i32.add (local.get $p) (local.get $nb)))
                (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
                (br $rows)))
            (local.set $p (i32.add (local.get $o) (local.get $i)))
            (v128.store offset=16 (local.get $p) (local.get $a1))
            (v128.store (local.get $p) (local.get $a0))
            (local.set $p (i32.add (local.get $p) (local.get $nb)))
            (v128.store offset=16 (local.get $p) (local.get $b1))
            (v128.store (local.get $p) (local.get $b0))
            (local.set $i (i32.add (local.get $i) (i32.const 32)))
            (br $outs8)))
        (if (i32.lt_u (local.get $i) (local.get $nb))
          (then
            (local.set $xp (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $kb))))
            (call $matvec_t (i32.add (local.get $o) (local.get $i)) (i32.add (local.get $w) (local.get $i)) (local.get $xp)
              (i32.shr_u (i32.sub (local.get $nb) (local.get $i)) (i32.const 2)) (local.get $k) (local.get $n))
            (call $matvec_t (i32.add (i32.add (local.get $o) (local.get $nb)) (local.get $i)) (i32.add (local.get $w) (local.get $i))
              (i32.add (local.get $xp) (local.get $kb))
              (i32.shr_u (i32.sub (local.get $nb) (local.get $i)) (i32.const 2)) (local.get $k) (local.get $n))))
        (local.set $t (i32.add (local.get $t) (i32.const 2)))
        (br $tokens2)))
    (if (i32.lt_u (local.get $t) (local.get $tokens))
      (then
        (call $matvec_t
          (i32.add (local.get $out) (i32.mul (local.get $t) (local.get $nb)))
          (local.get $w)
          (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $kb)))
          (local.get $n) (local.get $k) (local.get $n)))))

  ;; exp is e^x lane by lane: model.exp32's steps, one float32 operation each,
  ;; in its order (so the bits are the same): x < -87.3 gives 0, x is clamped
  ;; to [-87.3, 88.3], n = nearest(x·log2 e), r = (x - n·C1) - n·C2, Cephes'
  ;; polynomial p(r), y = (p·(r·r) + r) + 1, times 2^n built in the exponent bits.
  (func $exp (param $x v128) (result v128)
    (local $under v128) (local $n v128) (local $r v128) (local $p v128)
    (local.set $under (f32x4.lt (local.get $x) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3)))
    (local.set $x (f32x4.max (f32x4.min (local.get $x) (v128.const f32x4 88.3 88.3 88.3 88.3))
      (v128.const f32x4 -87.3 -87.3 -87.3 -87.3)))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $x)
      (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))))
    (local.set $r (f32x4.sub (local.get $x) (f32x4.mul (local.get $n)
      (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))))
    (local.set $r (f32x4.sub (local.get $r) (f32x4.mul (local.get $n)
      (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
    (local.set $p (f32x4.add (f32x4.mul (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4) (local.get $r))
      (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (f32x4.mul (local.get $r) (local.get $r))) (local.get $r)))
    (local.set $p (f32x4.add (local.get $p) (v128.const f32x4 1 1 1 1)))
    (local.set $p (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127)) (i32.const 23))))
    (v128.andnot (local.get $p) (local.get $under)))

  ;; exp1 is $exp of one value (the tails use it, so they round as the vectors do).
  (func $exp1 (param $x f32) (result f32)
    (f32x4.extract_lane 0 (call $exp (f32x4.splat (local.get $x)))))

  ;; softmax replaces x [n] (n ≥ 1) by exp(x - max) / Σ exp(x - max) as
  ;; model's reference does: the sum in dot's four-lane order, then a division.
  (func $softmax (export "softmax") (param $x i32) (param $n i32)
    (local $i i32) (local $n4 i32) (local $nb i32) (local $m v128) (local $s v128) (local $e v128)
    (local $mx f32) (local $sum f32) (local $v f32)
    (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $mx (f32.load (local.get $x)))
    (local.set $m (f32x4.splat (local.get $mx)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (local.set $m (f32x4.max (local.get $m) (v128.load (i32.add (local.get $x) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $mx (f32.max (f32.max (f32x4.extract_lane 0 (local.get $m)) (f32x4.extract_lane 1 (local.get $m)))
      (f32.max (f32x4.extract_lane 2 (local.get $m)) (f32x4.extract_lane 3 (local.get $m)))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (local.set $mx (f32.max (local.get $mx) (f32.load (i32.add (local.get $x) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next)))
    (local.set $m (f32x4.splat (local.get $mx)))
    (local.set $i (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (local.set $e (call $exp (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $i))) (local.get $m))))
      (v128.store (i32.add (local.get $x) (local.get $i)) (local.get $e))
      (local.set $s (f32x4.add (local.get $s) (local.get $e)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $sum (call $hsum (local.get $s)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (local.set $v (call $exp1 (f32.sub (f32.load (i32.add (local.get $x) (local.get $i))) (local.get $mx))))
      (f32.store (i32.add (local.get $x) (local.get $i)) (local.get $v))
      (local.set $sum (f32.add (local.get $sum) (local.get $v)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next)))
    (local.set $s (f32x4.splat (local.get $sum)))
    (local.set $i (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (v128.store (i32.add (local.get $x) (local.get $i)) (f32x4.div (v128.load (i32.add (local.get $x) (local.get $i))) (local.get $s)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (f32.store (i32.add (local.get $x) (local.get $i)) (f32.div (f32.load (i32.add (local.get $x) (local.get $i))) (local.get $sum)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; swiglu sets out[j] = g / (1 + exp(-g)) · up[j], g = gate[j], for j < n,
  ;; as model's reference does; out may be gate.
  (func (export "swiglu") (param $out i32) (param $gate i32) (param $up i32) (param $n i32)
    (local $i i32) (local $n4 i32) (local $nb i32) (local $g v128) (local $f f32)
    (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (local.set $g (v128.load (i32.add (local.get $gate) (local.get $i))))
      (v128.store (i32.add (local.get $out) (local.get $i))
        (f32x4.mul (f32x4.div (local.get $g) (f32x4.add (v128.const f32x4 1 1 1 1) (call $exp (f32x4.neg (local.get $g)))))
          (v128.load (i32.add (local.get $up) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (local.set $f (f32.load (i32.add (local.get $gate) (local.get $i))))
      (f32.store (i32.add (local.get $out) (local.get $i))
        (f32.mul (f32.div (local.get $f) (f32.add (f32.const 1) (call $exp1 (f32.neg (local.get $f)))))
          (f32.load (i32.add (local.get $up) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; ---------------------------------------------------------------------------
  ;; The glue of a decode step (model.Forward): RMSNorm, residual add, the
  ;; attention scale, rotary embedding, the greedy argmax, and attention for
  ;; every head in one call. Each follows its plain-Go reference
  ;; (model/forward.go, model/sample.go) operation for operation. A float32
  ;; parameter (eps, s) comes as its bits in an i32, so that every import
  ;; takes i32s only.

  ;; rmsnorm sets out = x / rms(x) · gain over n values as model's reference
  ;; does: ss = Σ x[i]·x[i] left to right, one rounded square at a time (the
  ;; squares four at a time, the additions in order); inv = 1 / √(ss/n + eps);
  ;; out[i] = (x[i]·inv)·gain[i]. out may be x.
  (func (export "rmsnorm") (param $out i32) (param $x i32) (param $gain i32) (param $n i32) (param $eps i32)
    (local $i i32) (local $n4 i32) (local $nb i32) (local $ss f32) (local $inv f32) (local $v v128) (local $f f32)
    (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
      (local.set $v (f32x4.mul (local.get $v) (local.get $v)))
      (local.set $ss (f32.add (f32.add (f32.add (f32.add (local.get $ss)
        (f32x4.extract_lane 0 (local.get $v))) (f32x4.extract_lane 1 (local.get $v)))
        (f32x4.extract_lane 2 (local.get $v))) (f32x4.extract_lane 3 (local.get $v))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (local.set $f (f32.load (i32.add (local.get $x) (local.get $i))))
      (local.set $ss (f32.add (local.get $ss) (f32.mul (local.get $f) (local.get $f))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next)))
    (local.set $inv (f32.div (f32.const 1) (f32.sqrt (f32.add
      (f32.div (local.get $ss) (f32.convert_i32_u (local.get $n))) (f32.reinterpret_i32 (local.get $eps))))))
    (local.set $v (f32x4.splat (local.get $inv)))
    (local.set $i (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (v128.store (i32.add (local.get $out) (local.get $i))
        (f32x4.mul (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $i))) (local.get $v))
          (v128.load (i32.add (local.get $gain) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (f32.store (i32.add (local.get $out) (local.get $i))
        (f32.mul (f32.mul (f32.load (i32.add (local.get $x) (local.get $i))) (local.get $inv))
          (f32.load (i32.add (local.get $gain) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; add sets x[i] += y[i] for i < n.
  (func (export "add") (param $x i32) (param $y i32) (param $n i32)
    (local $i i32) (local $n4 i32) (local $nb i32)
    (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (v128.store (i32.add (local.get $x) (local.get $i))
        (f32x4.add (v128.load (i32.add (local.get $x) (local.get $i))) (v128.load (i32.add (local.get $y) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (f32.store (i32.add (local.get $x) (local.get $i))
        (f32.add (f32.load (i32.add (local.get $x) (local.get $i))) (f32.load (i32.add (local.get $y) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; scale sets x[i] *= s for i < n (s: float32 bits).
  (func $scale (export "scale") (param $x i32) (param $n i32) (param $s i32)
    (local $i i32) (local $n4 i32) (local $nb i32) (local $f f32) (local $v v128)
    (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $f (f32.reinterpret_i32 (local.get $s)))
    (local.set $v (f32x4.splat (local.get $f)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (v128.store (i32.add (local.get $x) (local.get $i))
        (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $i))) (local.get $v)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (f32.store (i32.add (local.get $x) (local.get $i))
        (f32.mul (f32.load (i32.add (local.get $x) (local.get $i))) (local.get $f)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; rope rotates each pair (a, b) = (x[h+2i], x[h+2i+1]) of every head h
  ;; (x [n], heads of hd values) to (a·cos[i] − b·sin[i], a·sin[i] + b·cos[i]),
  ;; i < hd/2, each product rounded before the sum. Two pairs per vector:
  ;; p = [a0, a0, a1, a1]·[c0, s0, c1, s1], q = [b0, b0, b1, b1]·[s0, c0, s1, c1],
  ;; then the even lanes of p − q and the odd lanes of p + q.
  (func (export "rope") (param $x i32) (param $cos i32) (param $sin i32) (param $n i32) (param $hd i32)
    (local $h i32) (local $end i32) (local $hb i32) (local $i i32) (local $half i32) (local $h2 i32)
    (local $v v128) (local $c v128) (local $s v128) (local $p v128) (local $q v128)
    (local $a f32) (local $b f32) (local $cf f32) (local $sf f32)
    (local.set $half (i32.shr_u (local.get $hd) (i32.const 1)))
    (local.set $h2 (i32.shl (i32.and (local.get $half) (i32.const -2)) (i32.const 2))) ;; bytes of cos covered by whole vectors
    (local.set $hb (i32.shl (local.get $hd) (i32.const 2)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $h (local.get $x))
    (block $doneh (loop $heads
      (br_if $doneh (i32.ge_u (local.get $h) (local.get $end)))
      (local.set $i (i32.const 0))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $h2)))
        (local.set $c (v128.load64_zero (i32.add (local.get $cos) (local.get $i))))
        (local.set $s (v128.load64_zero (i32.add (local.get $sin) (local.get $i))))
        (local.set $v (v128.load (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 1)))))
        (local.set $p (f32x4.mul
          (i8x16.shuffle 0 1 2 3 0 1 2 3 8 9 10 11 8 9 10 11 (local.get $v) (local.get $v))
          (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $c) (local.get $s))))
        (local.set $q (f32x4.mul
          (i8x16.shuffle 4 5 6 7 4 5 6 7 12 13 14 15 12 13 14 15 (local.get $v) (local.get $v))
          (i8x16.shuffle 16 17 18 19 0 1 2 3 20 21 22 23 4 5 6 7 (local.get $c) (local.get $s))))
        (v128.store (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 1)))
          (i8x16.shuffle 0 1 2 3 20 21 22 23 8 9 10 11 28 29 30 31
            (f32x4.sub (local.get $p) (local.get $q)) (f32x4.add (local.get $p) (local.get $q))))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $next)))
      (if (i32.and (local.get $half) (i32.const 1))
        (then
          (local.set $cf (f32.load (i32.add (local.get $cos) (local.get $i))))
          (local.set $sf (f32.load (i32.add (local.get $sin) (local.get $i))))
          (local.set $a (f32.load (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 1)))))
          (local.set $b (f32.load offset=4 (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 1)))))
          (f32.store (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 1)))
            (f32.sub (f32.mul (local.get $a) (local.get $cf)) (f32.mul (local.get $b) (local.get $sf))))
          (f32.store offset=4 (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 1)))
            (f32.add (f32.mul (local.get $a) (local.get $sf)) (f32.mul (local.get $b) (local.get $cf))))))
      (local.set $h (i32.add (local.get $h) (local.get $hb)))
      (br $heads))))

  ;; argmax stores at out (an i32) the index of the largest of x [n], the
  ;; lowest on ties, as model's reference: 0 when x[0] is NaN or n is 0, and a
  ;; NaN is never picked. Lane l keeps the largest of x[0] and x[i], i ≡ l
  ;; (mod 4), with its first index (strictly greater replaces); the lanes then
  ;; give the largest value and, among lanes that hold it, the lowest index;
  ;; the n mod 4 last values follow one by one.
  (func (export "argmax") (param $out i32) (param $x i32) (param $n i32)
    (local $i i32) (local $n4 i32) (local $nb i32) (local $best v128) (local $idx v128) (local $cur v128)
    (local $v v128) (local $gt v128) (local $m f32) (local $b i32) (local $f f32) (local $l i32)
    (if (i32.eqz (local.get $n)) (then (i32.store (local.get $out) (i32.const 0)) (return)))
    (local.set $m (f32.load (local.get $x)))
    (if (f32.ne (local.get $m) (local.get $m)) (then (i32.store (local.get $out) (i32.const 0)) (return)))
    (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $best (f32x4.splat (local.get $m)))
    (local.set $cur (v128.const i32x4 0 1 2 3))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
      (local.set $gt (f32x4.gt (local.get $v) (local.get $best)))
      (local.set $best (v128.bitselect (local.get $v) (local.get $best) (local.get $gt)))
      (local.set $idx (v128.bitselect (local.get $cur) (local.get $idx) (local.get $gt)))
      (local.set $cur (i32x4.add (local.get $cur) (v128.const i32x4 4 4 4 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $m (f32x4.extract_lane 0 (local.get $best)))
    (local.set $b (i32x4.extract_lane 0 (local.get $idx)))
    (local.set $f (f32x4.extract_lane 1 (local.get $best)))
    (local.set $l (i32x4.extract_lane 1 (local.get $idx)))
    (if (i32.or (f32.gt (local.get $f) (local.get $m))
          (i32.and (f32.eq (local.get $f) (local.get $m)) (i32.lt_u (local.get $l) (local.get $b))))
      (then (local.set $m (local.get $f)) (local.set $b (local.get $l))))
    (local.set $f (f32x4.extract_lane 2 (local.get $best)))
    (local.set $l (i32x4.extract_lane 2 (local.get $idx)))
    (if (i32.or (f32.gt (local.get $f) (local.get $m))
          (i32.and (f32.eq (local.get $f) (local.get $m)) (i32.lt_u (local.get $l) (local.get $b))))
      (then (local.set $m (local.get $f)) (local.set $b (local.get $l))))
    (local.set $f (f32x4.extract_lane 3 (local.get $best)))
    (local.set $l (i32x4.extract_lane 3 (local.get $idx)))
    (if (i32.or (f32.gt (local.get $f) (local.get $m))
          (i32.and (f32.eq (local.get $f) (local.get $m)) (i32.lt_u (local.get $l) (local.get $b))))
      (then (local.set $m (local.get $f)) (local.set $b (local.get $l))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $nb)))
      (local.set $f (f32.load (i32.add (local.get $x) (local.get $i))))
      (if (f32.gt (local.get $f) (local.get $m))
        (then (local.set $m (local.get $f)) (local.set $b (i32.shr_u (local.get $i) (i32.const 2)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next)))
    (i32.store (local.get $out) (local.get $b)))

  ;; attention is model's attend for every head at once, one call instead of
  ;; four per head: head h (hd values from h·hd in q, keys, values and out)
  ;; sets its scores att[h·attStride …][:n] = matvec(keys, q) over the n
  ;; cached positions (row stride stride), scales them by s (float32 bits),
  ;; takes their softmax and sets out = matvec_t(values, scores). The same
  ;; functions as the separate calls, so the same bits.
  (func (export "attention") (param $out i32) (param $att i32) (param $q i32) (param $keys i32) (param $values i32)
    (param $heads i32) (param $n i32) (param $attStride i32) (param $stride i32) (param $hd i32) (param $s i32)
    (local $h i32) (local $off i32) (local $a i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $h) (local.get $heads)))
      (local.set $off (i32.shl (i32.mul (local.get $h) (local.get $hd)) (i32.const 2)))
      (local.set $a (i32.add (local.get $att) (i32.shl (i32.mul (local.get $h) (local.get $attStride)) (i32.const 2))))
      (call $matvec (local.get $a) (i32.add (local.get $keys) (local.get $off)) (i32.add (local.get $q) (local.get $off))
        (local.get $n) (local.get $hd) (local.get $stride))
      (call $scale (local.get $a) (local.get $n) (local.get $s))
      (call $softmax (local.get $a) (local.get $n))
      (call $weigh (i32.add (local.get $out) (local.get $off)) (i32.add (local.get $values) (local.get $off)) (local.get $a)
        (local.get $hd) (local.get $n) (local.get $stride))
      (local.set $h (i32.add (local.get $h) (i32.const 1)))
      (br $next))))

  ;; weigh is matvec_t for attention's values (out [hd] = Σ_j att[j]·values[j·stride …],
  ;; over j in increasing order from 0): 32 outputs at a time, eight sums in
  ;; flight while the positions go by (a head is usually 32 or 64 wide, and
  ;; each sum waits on its last addition), then matvec_t for the rest.
  (func $weigh (param $out i32) (param $w i32) (param $x i32) (param $n i32) (param $k i32) (param $stride i32)
    (local $i i32) (local $sb i32) (local $n32 i32) (local $p i32) (local $xp i32) (local $xend i32) (local $s v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local.set $sb (i32.shl (local.get $stride) (i32.const 2)))
    (local.set $xend (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2))))
    (local.set $n32 (i32.shl (i32.and (local.get $n) (i32.const -32)) (i32.const 2)))
    (block $done32 (loop $outs32
      (br_if $done32 (i32.ge_u (local.get $i) (local.get $n32)))
      (local.set $a0 (v128.const f32x4 0 0 0 0))
      (local.set $a1 (v128.const f32x4 0 0 0 0))
      (local.set $a2 (v128.const f32x4 0 0 0 0))
      (local.set $a3 (v128.const f32x4 0 0 0 0))
      (local.set $a4 (v128.const f32x4 0 0 0 0))
      (local.set $a5 (v128.const f32x4 0 0 0 0))
      (local.set $a6 (v128.const f32x4 0 0 0 0))
      (local.set $a7 (v128.const f32x4 0 0 0 0))
      (local.set $p (i32.add (local.get $w) (local.get $i)))
      (local.set $xp (local.get $x))
      (block $donej (loop $rows
        (br_if $donej (i32.ge_u (local.get $xp) (local.get $xend)))
        (local.set $s (v128.load32_splat (local.get $xp)))
        (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (v128.load offset=112 (local.get $p)) (local.get $s))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load offset=0 (local.get $p)) (local.get $s))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load offset=16 (local.get $p)) (local.get $s))))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load offset=32 (local.get $p)) (local.get $s))))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load offset=48 (local.get $p)) (local.get $s))))
        (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (v128.load offset=64 (local.get $p)) (local.get $s))))
        (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (v128.load offset=80 (local.get $p)) (local.get $s))))
        (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (v128.load offset=96 (local.get $p)) (local.get $s))))
        (local.set $p (i32.add (local.get $p) (local.get $sb)))
        (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
        (br $rows)))
      (local.set $p (i32.add (local.get $out) (local.get $i)))
      (v128.store offset=112 (local.get $p) (local.get $a7))
      (v128.store offset=0 (local.get $p) (local.get $a0))
      (v128.store offset=16 (local.get $p) (local.get $a1))
      (v128.store offset=32 (local.get $p) (local.get $a2))
      (v128.store offset=48 (local.get $p) (local.get $a3))
      (v128.store offset=64 (local.get $p) (local.get $a4))
      (v128.store offset=80 (local.get $p) (local.get $a5))
      (v128.store offset=96 (local.get $p) (local.get $a6))
      (local.set $i (i32.add (local.get $i) (i32.const 128)))
      (br $outs32)))
    (if (i32.lt_u (local.get $i) (i32.shl (local.get $n) (i32.const 2)))
      (then
        (call $matvec_t (i32.add (local.get $out) (local.get $i)) (i32.add (local.get $w) (local.get $i)) (local.get $x)
          (i32.sub (local.get $n) (i32.shr_u (local.get $i) (i32.const 2))) (local.get $k) (local.get $stride)))))
)
