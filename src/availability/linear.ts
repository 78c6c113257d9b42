/**
 * Dense linear algebra for small Markov chains (tens of states): Gaussian elimination with partial
 * pivoting, and the stationary distribution of a generator matrix.
 */

/** Solves A x = b. Throws when A is singular (to working precision). Inputs are not modified. */
export function solveLinear(a: number[][], b: number[]): number[] {
  const n = a.length;
  if (b.length !== n || a.some((row) => row.length !== n)) throw new Error('solveLinear: A must be n x n and b of length n');
  const m = a.map((row, i) => [...row, b[i]]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r][col]) > Math.abs(m[pivot][col])) pivot = r;
    if (Math.abs(m[pivot][col]) < 1e-300) throw new Error('solveLinear: matrix is singular');
    [m[col], m[pivot]] = [m[pivot], m[col]];
    for (let r = col + 1; r < n; r++) {
      const f = m[r][col] / m[col][col];
      if (f === 0) continue;
      for (let c = col; c <= n; c++) m[r][c] -= f * m[col][c];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r][n];
    for (let c = r + 1; c < n; c++) s -= m[r][c] * x[c];
    x[r] = s / m[r][r];
  }
  return x;
}

/**
 * Stationary distribution π of an irreducible CTMC with generator Q: π Q = 0, Σ π = 1.
 * Solves Qᵀ πᵀ = 0 with the last balance equation replaced by the normalisation (the balance
 * equations are linearly dependent, so one of them is redundant).
 */
export function stationaryDistribution(q: number[][]): number[] {
  const n = q.length;
  const a = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => q[j][i]));
  a[n - 1] = new Array<number>(n).fill(1);
  const b = new Array<number>(n).fill(0);
  b[n - 1] = 1;
  return solveLinear(a, b);
}
