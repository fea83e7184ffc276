import model from "./datamodel-subset.json" with { type: "json" };

/**
 * The XAPI data model subset (`datamodel-subset.json`, copied from the team's reference: it was
 * extracted from `doc/data/xenapi.json` of xapi-project/xen-api, LGPL-2.1 with linking exception).
 * The simulator derives every class, field, default and writable field from it at runtime, so
 * it can only ever serve fields XAPI really has.
 */

export interface FieldSpec {
  name: string;
  type: string;
  qualifier: "RO/runtime" | "RO/constructor" | "RW";
  /** OCaml-ish literal as XAPI's datamodel prints it (`""`, `{}`, `OpaqueRef:NULL`, `1.`), or null. */
  default: string | null;
  description: string;
}

export interface MessageSpec {
  name: string;
  params: { name: string; type: string }[];
  result: string;
  errors: string[];
}

export interface EnumSpec {
  name: string;
  values: { name: string }[] | string[];
}

export interface ClassSpec {
  name: string;
  description: string;
  fields: FieldSpec[];
  messages: MessageSpec[];
  enums: EnumSpec[];
}

export type FieldKind = "string" | "int" | "float" | "bool" | "datetime" | "ref" | "enum" | "set" | "map" | "record";

/** Where the copy lives in the source tree (a JSON import, so `tsc` carries it into dist/ too). */
export const DATAMODEL_PATH = new URL("./datamodel-subset.json", import.meta.url);

let cached: Map<string, ClassSpec> | undefined;

/** Every class of the subset by name (`VM`, `VIF`, `network`, ...). */
export function dataModel(): ReadonlyMap<string, ClassSpec> {
  if (cached === undefined) {
    const classes = model as unknown as ClassSpec[];
    cached = new Map(classes.map((cls) => [cls.name, cls]));
  }
  return cached;
}

export function classSpec(name: string): ClassSpec {
  const spec = dataModel().get(name);
  if (spec === undefined) throw new Error(`class ${name} is not in the XAPI data model subset`);
  return spec;
}

export function fieldSpec(className: string, field: string): FieldSpec {
  const spec = classSpec(className).fields.find((candidate) => candidate.name === field);
  if (spec === undefined) throw new Error(`${className}.${field} is not in the XAPI data model subset`);
  return spec;
}

export function fieldKind(type: string): FieldKind {
  if (type.endsWith(" map")) return "map";
  if (type.endsWith(" set")) return "set";
  if (type.endsWith(" ref")) return "ref";
  if (type.startsWith("enum ")) return "enum";
  if (type.endsWith(" record")) return "record";
  if (type === "string" || type === "int" || type === "float" || type === "bool" || type === "datetime") return type;
  throw new Error(`unknown XAPI type ${type}`);
}

/** `Null` and `OpaqueRef:NULL` both print the null reference. */
export const NULL_REF = "OpaqueRef:NULL";
export const EPOCH = "19700101T00:00:00Z";

/**
 * The value a freshly created object carries for `field`: the data model's default converted to
 * its JSON-RPC wire form, or the type's empty value where XAPI fills the field in itself.
 */
export function defaultValue(field: FieldSpec): unknown {
  const kind = fieldKind(field.type);
  const text = field.default;
  if (text === null) return emptyValue(field.type);
  switch (kind) {
    case "string":
      return parseOcamlString(text);
    case "int":
      return Number.parseInt(text, 10);
    case "float":
      return Number.parseFloat(text);
    case "bool":
      return text === "true";
    case "datetime":
      return text;
    case "ref":
      return NULL_REF;
    case "enum":
      return text;
    case "set":
      return parseOcamlSet(text, field.type);
    case "map":
      return parseOcamlMap(text);
    case "record":
      return {};
  }
}

/** The empty value of a type, what XAPI shows for a field nobody has set. */
export function emptyValue(type: string): unknown {
  switch (fieldKind(type)) {
    case "string":
      return "";
    case "int":
      return 0;
    case "float":
      return 0;
    case "bool":
      return false;
    case "datetime":
      return EPOCH;
    case "ref":
      return NULL_REF;
    case "enum":
      return firstEnumValue(type);
    case "set":
      return [];
    case "map":
      return {};
    case "record":
      return {};
  }
}

/** Values of `enum <name>`, looked up in whichever class declares it. */
export function enumValues(name: string): string[] {
  for (const cls of dataModel().values()) {
    const found = cls.enums.find((candidate) => candidate.name === name);
    if (found !== undefined) return found.values.map((value) => (typeof value === "string" ? value : value.name));
  }
  throw new Error(`enum ${name} is not in the XAPI data model subset`);
}

function firstEnumValue(type: string): string {
  const values = enumValues(type.slice("enum ".length));
  return values[0] ?? "";
}

function parseOcamlString(text: string): string {
  if (text.startsWith('"') && text.endsWith('"')) return text.slice(1, -1);
  return text;
}

function parseOcamlSet(text: string, type: string): unknown[] {
  const inner = text.replace(/^\{/, "").replace(/\}$/, "").trim();
  if (inner === "") return [];
  const element = type.slice(0, -" set".length);
  return inner.split(",").map((item) => (element === "int" ? Number.parseInt(item, 10) : parseOcamlString(item.trim())));
}

function parseOcamlMap(text: string): Record<string, string> {
  const inner = text.replace(/^\{/, "").replace(/\}$/, "").trim();
  const map: Record<string, string> = {};
  if (inner === "") return map;
  for (const pair of inner.split(",")) {
    const [key, value] = pair.split("->").map((part) => parseOcamlString(part.trim()));
    if (key !== undefined && value !== undefined) map[key] = value;
  }
  return map;
}
