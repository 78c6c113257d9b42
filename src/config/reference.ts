import { z } from 'zod';

/** One documented setting: dotted key, type, default, description. */
export interface SettingDoc {
  key: string;
  type: string;
  default: string;
  description: string;
}

function unwrap(t: z.ZodTypeAny): { inner: z.ZodTypeAny; def?: unknown; optional: boolean; description?: string } {
  let cur = t;
  let def: unknown;
  let optional = false;
  let description = t.description;
  for (;;) {
    if (cur instanceof z.ZodDefault) {
      def = cur._def.defaultValue();
      cur = cur._def.innerType;
    } else if (cur instanceof z.ZodOptional || cur instanceof z.ZodNullable) {
      optional = true;
      cur = cur.unwrap();
    } else if (cur instanceof z.ZodEffects) {
      cur = cur.innerType();
    } else break;
    description ??= cur.description;
  }
  return { inner: cur, def, optional, description };
}

function typeName(t: z.ZodTypeAny): string {
  if (t instanceof z.ZodString) return 'string';
  if (t instanceof z.ZodNumber) return 'number';
  if (t instanceof z.ZodBoolean) return 'boolean';
  if (t instanceof z.ZodLiteral) return JSON.stringify(t.value);
  if (t instanceof z.ZodEnum) return (t.options as string[]).map((o) => JSON.stringify(o)).join(' \\| ');
  if (t instanceof z.ZodArray) return `list of ${typeName(unwrap(t.element).inner)}`;
  if (t instanceof z.ZodRecord) return 'map';
  if (t instanceof z.ZodObject) return 'object';
  if (t instanceof z.ZodUnion) return (t.options as z.ZodTypeAny[]).map((o) => typeName(unwrap(o).inner)).join(' or ');
  if (t instanceof z.ZodDiscriminatedUnion) return `one of kind: ${[...t.optionsMap.keys()].map((k) => JSON.stringify(k)).join(', ')}`;
  return 'value';
}

/** Walk a schema and list every setting with its type, default and description. */
export function describeSchema(schema: z.ZodTypeAny, prefix = ''): SettingDoc[] {
  const out: SettingDoc[] = [];
  const { inner } = unwrap(schema);
  const visitObject = (obj: z.AnyZodObject, base: string, skip?: string) => {
    for (const [k, v] of Object.entries(obj.shape as Record<string, z.ZodTypeAny>)) {
      if (k === skip) continue;
      const key = base ? `${base}.${k}` : k;
      const u = unwrap(v);
      out.push({
        key,
        type: typeName(u.inner),
        default: u.def !== undefined ? JSON.stringify(u.def) : u.optional ? '(optional)' : '(required)',
        description: u.description ?? '',
      });
      out.push(...describeSchema(u.inner instanceof z.ZodArray ? u.inner.element : v, u.inner instanceof z.ZodArray ? `${key}[]` : key));
    }
  };
  if (inner instanceof z.ZodObject) {
    if (prefix) visitObject(inner, prefix);
  } else if (inner instanceof z.ZodDiscriminatedUnion) {
    for (const [kind, opt] of inner.optionsMap as Map<string, z.AnyZodObject>) {
      visitObject(opt, `${prefix} (kind ${String(kind)})`, inner.discriminator);
    }
  }
  return out;
}

/** The configuration reference as Markdown (docs/configuration.md is generated from it). */
export function configReferenceMarkdown(schema: z.AnyZodObject, intro: string): string {
  const rows: SettingDoc[] = [];
  for (const [k, v] of Object.entries(schema.shape as Record<string, z.ZodTypeAny>)) {
    const u = unwrap(v);
    rows.push({ key: k, type: typeName(u.inner), default: u.def !== undefined ? JSON.stringify(u.def) : u.optional ? '(optional)' : '(required)', description: u.description ?? '' });
    rows.push(...describeSchema(u.inner instanceof z.ZodArray ? u.inner.element : v, u.inner instanceof z.ZodArray ? `${k}[]` : k));
  }
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = ['| key | type | default | meaning |', '| --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| \`${r.key}\` | ${r.type} | ${esc(r.default === '(required)' || r.default === '(optional)' ? r.default : `\`${r.default}\``)} | ${esc(r.description)} |`);
  return `${intro}\n${lines.join('\n')}\n`;
}
