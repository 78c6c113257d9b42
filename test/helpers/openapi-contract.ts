/**
 * Checks real API answers against docs/openapi.yaml: the status must be documented for the operation
 * (an unknown route or method against the NotFound response), and a JSON body must match the documented
 * schema (Ajv, OpenAPI 3.0 `nullable` included).
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse } from 'yaml';

type Obj = Record<string, any>;

const DOC_ID = 'openapi.json';
const escape = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

export class OpenApiContract {
  private readonly doc: Obj;
  private readonly ajv: Ajv;
  private readonly routes: { template: string; re: RegExp }[];

  constructor(file = new URL('../../docs/openapi.yaml', import.meta.url)) {
    this.doc = parse(readFileSync(file, 'utf8')) as Obj;
    // strict: false lets the OpenAPI keywords around the schemas (summary, paths...) be; formats are documentation here.
    this.ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
    this.ajv.addSchema({ ...this.doc, $id: DOC_ID });
    this.routes = Object.keys(this.doc.paths as Obj).map((template) => ({
      template,
      re: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
  }

  /** Problems with one answer (empty when it matches the document). */
  check(method: string, url: string, status: number, body: string, contentType: string | null): string[] {
    const path = new URL(url, 'http://x').pathname;
    const m = method.toLowerCase();
    const route = this.routes.find((r) => r.re.test(path));
    const ops = route ? (this.doc.paths[route.template] as Obj) : undefined;
    // HEAD is answered as GET without a body wherever only GET is documented (HTTP semantics).
    const opKey = ops?.[m] ? m : m === 'head' && ops?.get ? 'get' : m;
    const op = ops?.[opKey];
    const where = `${method} ${path} → ${status}`;
    let pointer: string;
    let response: Obj | undefined;
    if (!op) {
      // No such operation: the sidecar answers NOT_FOUND or METHOD_NOT_ALLOWED (components.responses.NotFound).
      if (status !== 404 && status !== 405) return [`${where}: not a documented operation, and not answered 404/405`];
      pointer = '#/components/responses/NotFound';
      response = this.doc.components.responses.NotFound;
    } else {
      const key = op.responses[String(status)] ? String(status) : op.responses.default ? 'default' : null;
      if (key === null) return [`${where}: status not documented (documented: ${Object.keys(op.responses).join(', ')})`];
      pointer = `#/paths/${escape(route!.template)}/${opKey}/responses/${key}`;
      response = op.responses[key];
    }
    while (response?.$ref) {
      pointer = response.$ref as string;
      response = pointer.split('/').slice(1).reduce((o: Obj, k) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], this.doc);
    }
    const json = response?.content?.['application/json'];
    if (!json?.schema || m === 'head') return [];
    if (!contentType?.includes('application/json')) return [`${where}: documented as application/json, answered ${contentType ?? 'without a content type'}`];
    let data: unknown;
    try {
      data = JSON.parse(body);
    } catch {
      return [`${where}: body is not JSON`];
    }
    const validate = this.ajv.getSchema(`${DOC_ID}${pointer}/content/application~1json/schema`);
    if (!validate) return [`${where}: schema at ${pointer} not found`];
    if (validate(data)) return [];
    return (validate.errors ?? []).map((e) => `${where}: ${e.instancePath || '(body)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
  }
}
