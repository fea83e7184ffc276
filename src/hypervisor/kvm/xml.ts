import { XMLBuilder, XMLParser } from "fast-xml-parser";

/**
 * The one XML parser and builder configuration for libvirt documents. Attributes are `@_name`
 * keys; the builder escapes every text and attribute value, so no input can change a
 * document's structure (nothing here ever concatenates XML strings).
 */
export type XmlNode = { [key: string]: XmlValue };
export type XmlValue = string | number | XmlNode | XmlNode[] | undefined;

/** Elements that may repeat in the documents we read. */
const REPEATED = new Set(["domain.devices.interface", "domain.devices.disk", "domain.devices.serial", "domain.devices.console"]);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  parseAttributeValue: false,
  parseTagValue: false,
  jPath: true,
  isArray: (_name, path) => REPEATED.has(String(path)),
});

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  format: true,
  suppressEmptyNode: true,
});

export function parseXml(xml: string): XmlNode {
  return parser.parse(xml) as XmlNode;
}

export function buildXml(document: XmlNode): string {
  return builder.build(document) as string;
}

/** A child element as an object (absent, or a bare text element, gives undefined). */
export function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  const value = node?.[name];
  if (value === undefined || typeof value !== "object" || Array.isArray(value)) return undefined;
  return value;
}

export function children(node: XmlNode | undefined, name: string): XmlNode[] {
  const value = node?.[name];
  if (Array.isArray(value)) return value;
  if (value !== undefined && typeof value === "object") return [value];
  return [];
}

export function attribute(node: XmlNode | undefined, name: string): string | undefined {
  const value = node?.[`@_${name}`];
  return typeof value === "string" ? value : undefined;
}
