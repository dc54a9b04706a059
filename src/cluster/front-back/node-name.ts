/** A node name: what goes into its certificate's CN and SAN and its file names. */
export function isNodeName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name);
}
