/** Name rules of PROTOCOL.md §5.8. Each check returns an error message, or undefined when valid. */

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TAG = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const RESERVED_HOSTNAMES = new Set(['localhost', 'backbone', 'broadcast']);

export const MAX_TAGS = 10;

/** The empty hostname is valid: it clears the name. */
export function hostnameError(hostname: string): string | undefined {
  if (hostname === '') return undefined;
  if (hostname.length > 63) return `hostname "${hostname.slice(0, 70)}" is longer than 63 characters`;
  if (!HOSTNAME.test(hostname)) {
    return `hostname "${hostname}" is invalid: use lower-case letters, digits and '-', not starting or ending with '-'`;
  }
  if (RESERVED_HOSTNAMES.has(hostname)) return `hostname "${hostname}" is reserved`;
  return undefined;
}

/** Strips one leading '#' from each tag and checks it; returns the tags or an error message. */
export function normalizeTags(tags: readonly string[]): { tags: string[] } | { error: string } {
  if (tags.length > MAX_TAGS) return { error: `too many tags: ${tags.length} (at most ${MAX_TAGS})` };
  const out: string[] = [];
  for (const raw of tags) {
    const tag = raw.startsWith('#') ? raw.slice(1) : raw;
    if (tag.length < 1 || tag.length > 32) return { error: `tag "${raw.slice(0, 40)}" must be 1 to 32 characters` };
    if (!TAG.test(tag)) {
      return {
        error: `tag "${raw}" is invalid: use lower-case letters, digits and '-', not starting or ending with '-'`,
      };
    }
    out.push(tag);
  }
  return { tags: out };
}
