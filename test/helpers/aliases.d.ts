// The previous framework majors, installed as npm aliases for the conformance
// suite; their types are not needed there.
declare module 'express4'
declare module 'koa2'
