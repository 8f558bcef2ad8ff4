export * from "./client.js";
export * from "./wx.js";
export * from "./veteran.js";
