/** Go's RFC3339Nano in UTC: fractional seconds with trailing zeros trimmed, no fraction when zero. */
export function rfc3339Nano(date: Date): string {
  return date.toISOString().replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac ? `.${frac}Z` : 'Z'));
}
