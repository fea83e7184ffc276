import { xmlRpcValue } from "./xmlrpc-value.js";

/**
 * XAPI's XML-RPC wire format (`doc/wire-protocol.md` of xapi-project/xen-api): a `methodCall`
 * in, a `methodResponse` whose single parameter is a struct `{Status: "Success", Value}` or
 * `{Status: "Failure", ErrorDescription: [code, ...params]}` out. Ints travel as strings.
 */
export interface XmlRpcCall {
  method: string;
  params: unknown[];
}

interface Element {
  name: string;
  children: Node[];
}
type Node = Element | string;

export function parseMethodCall(xml: string): XmlRpcCall {
  const root = parseXml(xml);
  if (root.name !== "methodCall") throw new Error(`expected <methodCall>, got <${root.name}>`);
  const methodName = child(root, "methodName");
  if (methodName === undefined) throw new Error("<methodCall> has no <methodName>");
  const params = child(root, "params");
  const values = params === undefined ? [] : elements(params, "param").map((param) => decodeValue(child(param, "value")));
  return { method: text(methodName).trim(), params: values };
}

export function methodResponse(result: { ok: true; value: unknown } | { ok: false; description: string[] }): string {
  const struct = result.ok ? { Status: "Success", Value: result.value } : { Status: "Failure", ErrorDescription: result.description };
  return `<?xml version="1.0"?><methodResponse><params><param>${xmlRpcValue(struct)}</param></params></methodResponse>`;
}

function decodeValue(value: Element | undefined): unknown {
  if (value === undefined) return "";
  const typed = value.children.find((node): node is Element => typeof node !== "string");
  if (typed === undefined) return text(value);
  switch (typed.name) {
    case "string":
    case "dateTime.iso8601":
      return text(typed);
    case "int":
    case "i4":
    case "i8":
      return Number.parseInt(text(typed), 10);
    case "double":
      return Number.parseFloat(text(typed));
    case "boolean":
      return text(typed).trim() === "1";
    case "nil":
      return null;
    case "array": {
      const data = child(typed, "data");
      return data === undefined ? [] : elements(data, "value").map(decodeValue);
    }
    case "struct": {
      const result: Record<string, unknown> = {};
      for (const member of elements(typed, "member")) {
        const name = child(member, "name");
        if (name !== undefined) result[text(name)] = decodeValue(child(member, "value"));
      }
      return result;
    }
    default:
      throw new Error(`unsupported XML-RPC type <${typed.name}>`);
  }
}

function child(element: Element, name: string): Element | undefined {
  return elements(element, name)[0];
}

function elements(element: Element, name: string): Element[] {
  return element.children.filter((node): node is Element => typeof node !== "string" && node.name === name);
}

function text(element: Element): string {
  return element.children.map((node) => (typeof node === "string" ? node : text(node))).join("");
}

/** A small XML reader for XML-RPC: elements and text, entities decoded, no attributes needed. */
function parseXml(xml: string): Element {
  const stack: Element[] = [{ name: "#document", children: [] }];
  const pattern = /<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<(\/?)([A-Za-z_][\w.:-]*)[^>]*?(\/?)>|([^<]+)/g;
  for (const match of xml.matchAll(pattern)) {
    const [, closing, name, selfClosing, content] = match;
    const top = stack[stack.length - 1] as Element;
    if (content !== undefined) {
      top.children.push(decodeEntities(content));
    } else if (name !== undefined && closing === "/") {
      if (top.name !== name) throw new Error(`mismatched </${name}>`);
      stack.pop();
    } else if (name !== undefined) {
      const element: Element = { name, children: [] };
      top.children.push(element);
      if (selfClosing !== "/") stack.push(element);
    }
  }
  const document = stack[0] as Element;
  if (stack.length !== 1) throw new Error("unterminated XML element");
  const root = document.children.find((node): node is Element => typeof node !== "string");
  if (root === undefined) throw new Error("no XML element");
  return root;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot|apos);/gi, (_all, entity: string) => {
    if (entity.startsWith("#x") || entity.startsWith("#X")) return String.fromCodePoint(Number.parseInt(entity.slice(2), 16));
    if (entity.startsWith("#")) return String.fromCodePoint(Number.parseInt(entity.slice(1), 10));
    return { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" }[entity.toLowerCase()] ?? "";
  });
}
