/**
 * Cuts a byte stream into pieces at arbitrary positions (taken modulo its length, duplicates ignored), for
 * the "any split decodes the same" properties of the stream codecs.
 */
export function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(buf.subarray(prev, p));
    prev = p;
  }
  parts.push(buf.subarray(prev));
  return parts;
}
