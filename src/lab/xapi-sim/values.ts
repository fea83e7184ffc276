import { randomUUID } from "node:crypto";
import type { XapiRecord } from "./database.js";
import { classSpec, type FieldSpec, fieldKind } from "./datamodel.js";
import { XapiFailure } from "./failure.js";

/** Turning wire parameters into typed field values the way XAPI's unmarshalling does. */

/** The fields a constructor takes: its RW and RO/constructor fields; those without a default are required. */
export function constructorFields(cls: string, args: XapiRecord): XapiRecord {
  const fields: XapiRecord = {};
  for (const field of classSpec(cls).fields) {
    if (field.qualifier === "RO/runtime") continue;
    if (field.name in args) {
      fields[field.name] = coerce(field, args[field.name]);
    } else if (field.default === null) {
      throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
    }
  }
  return fields;
}

export function coerce(field: FieldSpec, value: unknown): unknown {
  switch (fieldKind(field.type)) {
    case "int":
      return toInt(value, field.name);
    case "bool":
      if (typeof value !== "boolean") throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return value;
    case "set":
      if (!Array.isArray(value)) throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return value;
    case "map":
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([key, item]) => [key, String(item)]));
    default:
      if (typeof value !== "string") throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return value;
  }
}

/** XAPI ints are 64-bit; over JSON-RPC they arrive as numbers, XML-RPC style clients send strings. */
export function toInt(value: unknown, field: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^-?\d+$/.test(value)) return Number(value);
  throw new XapiFailure("FIELD_TYPE_ERROR", field);
}

export function asRecord(value: unknown, field: string): XapiRecord {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new XapiFailure("FIELD_TYPE_ERROR", field);
  return value as XapiRecord;
}

/** A locally administered unicast MAC, what XAPI picks for `MAC: ""`. */
export function randomMac(): string {
  const bytes = randomUUID().replace(/-/g, "").slice(0, 10).match(/../g) as string[];
  return ["02", ...bytes].join(":");
}
