/**
 * The keys of an S3 multi-object delete (`POST /bucket?delete`): the request names them in
 * `<Delete><Object><Key>…</Key></Object>…</Delete>`, the answer lists failures in `<Error><Key>…</Key>…</Error>`
 * (and, unless the request asked for quiet mode, successes in `<Deleted>`). Read with a scanner rather than
 * an XML parser: the documents are small (S3 caps a request at 1,000 keys) and only `Key` elements matter.
 */

/** S3 caps a multi-object delete at 1,000 keys of up to 1,024 bytes each; the XML around them is small. */
export const MAX_MULTI_DELETE_BYTES = 2 * 1024 * 1024;

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The text of an XML element's content: entity and character references resolved, CDATA unwrapped. */
export function xmlText(raw: string): string {
  let out = '';
  let i = 0;
  while (i < raw.length) {
    const cdata = raw.indexOf('<![CDATA[', i);
    const end = cdata < 0 ? raw.length : cdata;
    out += raw.slice(i, end).replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, ref: string) => {
      if (ref.startsWith('#x')) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
      if (ref.startsWith('#')) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
      return ENTITIES[ref] ?? m;
    });
    if (cdata < 0) break;
    const close = raw.indexOf(']]>', cdata + 9);
    const stop = close < 0 ? raw.length : close;
    out += raw.slice(cdata + 9, stop);
    i = close < 0 ? raw.length : close + 3;
  }
  return out;
}

/** The `Key` values inside each `<tag>…</tag>` block of `xml`, in order. */
function keysIn(xml: string, tag: string): string[] {
  const keys: string[] = [];
  const block = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g');
  for (const m of xml.matchAll(block)) {
    const k = /<Key(?:\s[^>]*)?>([\s\S]*?)<\/Key>/.exec(m[1]);
    if (k) keys.push(xmlText(k[1]));
  }
  return keys;
}

/** The keys a multi-object delete request asks to delete. */
export function requestedDeleteKeys(xml: string): string[] {
  return keysIn(xml, 'Object');
}

/**
 * The keys a multi-object delete removed: those requested minus those its answer lists as errors (an
 * answer in quiet mode lists only errors, so the request is the list to start from).
 */
export function deletedKeys(requestXml: string, answerXml: string): string[] {
  const failed = new Set(keysIn(answerXml, 'Error'));
  return [...new Set(requestedDeleteKeys(requestXml))].filter((k) => !failed.has(k));
}
