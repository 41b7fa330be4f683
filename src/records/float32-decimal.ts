// Float32 values as the shortest decimal that reads back to the same 32-bit float, written as
// bytes: the recovery stream's vectors. JSON.stringify would print a float32 as the double it
// widens to (0.1 as 0.10000000149011612), twice as long.

// ---- Shortest float32 decimals: a port of Ulf Adams' Ryu f2s (PLDI 2018) ----
//
// Ryu multiplies the float's mantissa by a 61-bit power-of-5 factor and keeps the top bits. C does
// that in 64-bit integers; here each factor is three 21-bit limbs, so that every partial product of
// a mantissa (under 2^26) and a limb stays under 2^53 and is exact in a double.

const LIMB_BITS = 21
const LIMB_SCALE = 2 ** -LIMB_BITS
const LIMB_MASK = (1n << 21n) - 1n
const POW5_INV_BITCOUNT = 61
const POW5_BITCOUNT = 61

/** ceil(log2(5^e)) for e >= 1, and 1 for e = 0: the bit length of 5^e. */
function pow5bits (e: number): number {
  return ((e * 1217359) >>> 19) + 1
}

/** floor(log10(2^e)) */
function log10Pow2 (e: number): number {
  return (e * 78913) >>> 18
}

/** floor(log10(5^e)) */
function log10Pow5 (e: number): number {
  return (e * 732923) >>> 20
}

function limbTable (factors: bigint[]): Float64Array {
  const table = new Float64Array(factors.length * 3)
  factors.forEach((factor, i) => {
    table[3 * i] = Number(factor & LIMB_MASK)
    table[3 * i + 1] = Number((factor >> 21n) & LIMB_MASK)
    table[3 * i + 2] = Number(factor >> 42n)
  })
  return table
}

// The same factors as Ryu's tables (the top 64 bits of its double tables): floor(2^k / 5^q) + 1 with
// k = pow5bits(q) + 60 for the inverse powers, and 5^i cut to its top 61 bits for the powers. The
// ranges cover the float32 exponents: q up to 30 when e2 >= 0, i up to 47 when e2 < 0.
const POW5_INV = limbTable(Array.from({ length: 31 }, (_, q) =>
  (1n << BigInt(pow5bits(q) + POW5_INV_BITCOUNT - 1)) / 5n ** BigInt(q) + 1n))
const POW5 = limbTable(Array.from({ length: 48 }, (_, i) => {
  const shift = pow5bits(i) - POW5_BITCOUNT
  return shift < 0 ? 5n ** BigInt(i) << BigInt(-shift) : 5n ** BigInt(i) >> BigInt(shift)
}))

const POW2_NEG = Float64Array.from({ length: 64 }, (_, n) => 2 ** -n)

/**
 * floor(m * factor / 2^shift) for the factor at `index` of `table`. Every shift Ryu asks for here is
 * at least 42 (two limbs), so the low limbs only carry into the top one and the result is exact.
 */
function mulShift (m: number, table: Float64Array, index: number, shift: number): number {
  const at = 3 * index
  const low = m * table[at]
  const middle = m * table[at + 1] + Math.floor(low * LIMB_SCALE)
  const high = m * table[at + 2] + Math.floor(middle * LIMB_SCALE)
  return Math.floor(high * POW2_NEG[shift - 2 * LIMB_BITS]) | 0
}

function multipleOfPowerOf5 (value: number, p: number): boolean {
  let count = 0
  while (value % 5 === 0) {
    value = (value / 5) | 0
    count++
  }
  return count >= p
}

function multipleOfPowerOf2 (value: number, p: number): boolean {
  return (value & ((1 << p) - 1)) === 0
}

/**
 * Writes the shortest decimal that rounds to the positive, nonzero, finite float32 with these
 * fields, the closest to it when several are as short; returns the end.
 */
function writeShortest (ieeeMantissa: number, ieeeExponent: number, view: DataView, at: number): number {
  // The float is m2 * 2^(e2 + 2); the two extra bits make room for the interval's bounds.
  const e2 = ieeeExponent === 0 ? -151 : ieeeExponent - 152
  const m2 = ieeeExponent === 0 ? ieeeMantissa : ieeeMantissa | 0x800000
  const acceptBounds = (m2 & 1) === 0

  // Every decimal strictly between mm and mp (times 2^e2) rounds to the float; the bounds
  // themselves do when the mantissa is even (round half to even). At a power of two the gap below
  // is half the gap above.
  const mv = 4 * m2
  const mp = mv + 2
  const mmShift = ieeeMantissa !== 0 || ieeeExponent <= 1 ? 1 : 0
  const mm = mv - 1 - mmShift

  let vr: number, vp: number, vm: number, e10: number
  let vmIsTrailingZeros = false
  let vrIsTrailingZeros = false
  let lastRemovedDigit = 0
  if (e2 >= 0) {
    const q = log10Pow2(e2)
    e10 = q
    const shift = -e2 + q + POW5_INV_BITCOUNT + pow5bits(q) - 1
    vr = mulShift(mv, POW5_INV, q, shift)
    vp = mulShift(mp, POW5_INV, q, shift)
    vm = mulShift(mm, POW5_INV, q, shift)
    if (q !== 0 && (((vp - 1) / 10) | 0) <= ((vm / 10) | 0)) {
      // The loop below may not run, and rounding needs the digit just below vr either way.
      const previousShift = -e2 + q - 1 + POW5_INV_BITCOUNT + pow5bits(q - 1) - 1
      lastRemovedDigit = mulShift(mv, POW5_INV, q - 1, previousShift) % 10
    }
    if (q <= 9) {
      // Only one of mp, mv and mm can be a multiple of 5.
      if (mv % 5 === 0) vrIsTrailingZeros = multipleOfPowerOf5(mv, q)
      else if (acceptBounds) vmIsTrailingZeros = multipleOfPowerOf5(mm, q)
      else if (multipleOfPowerOf5(mp, q)) vp--
    }
  } else {
    const q = log10Pow5(-e2)
    e10 = q + e2
    const i = -e2 - q
    const shift = q - pow5bits(i) + POW5_BITCOUNT
    vr = mulShift(mv, POW5, i, shift)
    vp = mulShift(mp, POW5, i, shift)
    vm = mulShift(mm, POW5, i, shift)
    if (q !== 0 && (((vp - 1) / 10) | 0) <= ((vm / 10) | 0)) {
      const previousShift = q - 1 - pow5bits(i + 1) + POW5_BITCOUNT
      lastRemovedDigit = mulShift(mv, POW5, i + 1, previousShift) % 10
    }
    if (q <= 1) {
      // mv = 4 * m2 has two trailing zero bits, mp one, mm one exactly when mmShift is 1.
      vrIsTrailingZeros = true
      if (acceptBounds) vmIsTrailingZeros = mmShift === 1
      else vp--
    } else if (q < 31) {
      vrIsTrailingZeros = multipleOfPowerOf2(mv, q - 1)
    }
  }

  // Drop digits while the interval still holds a shorter decimal, then round what is left.
  let removed = 0
  if (vmIsTrailingZeros || vrIsTrailingZeros) {
    // Exact bounds or an exact tie, which only ~4% of floats need.
    while (((vp / 10) | 0) > ((vm / 10) | 0)) {
      vmIsTrailingZeros &&= vm % 10 === 0
      vrIsTrailingZeros &&= lastRemovedDigit === 0
      lastRemovedDigit = vr % 10
      vr = (vr / 10) | 0
      vp = (vp / 10) | 0
      vm = (vm / 10) | 0
      removed++
    }
    if (vmIsTrailingZeros) {
      while (vm % 10 === 0) {
        vrIsTrailingZeros &&= lastRemovedDigit === 0
        lastRemovedDigit = vr % 10
        vr = (vr / 10) | 0
        vp = (vp / 10) | 0
        vm = (vm / 10) | 0
        removed++
      }
    }
    // An exact ...50000 rounds to even.
    if (vrIsTrailingZeros && lastRemovedDigit === 5 && vr % 2 === 0) lastRemovedDigit = 4
    const roundUp = (vr === vm && (!acceptBounds || !vmIsTrailingZeros)) || lastRemovedDigit >= 5
    return writeDecimal(roundUp ? vr + 1 : vr, e10 + removed, view, at)
  }
  return writeRounded(vr, vp, vm, lastRemovedDigit, e10, view, at)
}

/**
 * Ryu's common case, where no bound is exact and vr is not an exact tie: drops digits while the
 * interval still holds a shorter decimal, then rounds vr by the last digit dropped. vm is just
 * below the interval, vp is in it, and lastRemovedDigit stands for what lies below vr's digits.
 */
function writeRounded (
  vr: number, vp: number, vm: number, lastRemovedDigit: number, e10: number, view: DataView, at: number
): number {
  let removed = 0
  while (((vp / 10) | 0) > ((vm / 10) | 0)) {
    lastRemovedDigit = vr % 10
    vr = (vr / 10) | 0
    vp = (vp / 10) | 0
    vm = (vm / 10) | 0
    removed++
  }
  return writeDecimal(vr === vm || lastRemovedDigit >= 5 ? vr + 1 : vr, e10 + removed, view, at)
}

// ---- The fast path: Ryu's common case in double arithmetic ----
//
// For floats from about 1e-14 to 1e9, one multiplication by 10^k * 2^e2, exact as a double, puts
// the float and its interval's bounds between 1e8 and 2^31, each off by at most 2^-23. Ryu's common
// case only needs their floors, and whether the float's scaled value is above or below a half: when
// no bound is that close to an integer, nor the value to an integer or a half, these are exact and
// so is the answer. Otherwise Ryu decides: random values below 1 take the fast path all but about
// 15 times in a million, while values with few fraction bits (0.5, 3, integers past 2^20) seldom do.

const FAST_PATH_ERROR = 2 ** -20 // the 2^-23 bound, with room to spare

// By IEEE exponent: 10^k * 2^e2, with k such that the binade's least value times 10^k is in
// [1e8, 1e9), where 0 <= k <= 22 (10^k exact); 0 for the exponents without a fast path.
const FAST_PATH_SCALE = new Float64Array(255)
const FAST_PATH_EXPONENT10 = new Int32Array(255)
for (let ieeeExponent = 1; ieeeExponent < 255; ieeeExponent++) {
  const binadeStart = 2 ** (ieeeExponent - 127)
  let k = 0
  while (k < 22 && binadeStart * 10 ** k < 1e8) k++
  if (binadeStart * 10 ** k < 1e8 || binadeStart * 10 ** k >= 1e9) continue
  FAST_PATH_SCALE[ieeeExponent] = 10 ** k * 2 ** (ieeeExponent - 152)
  FAST_PATH_EXPONENT10[ieeeExponent] = -k
}

function nearInteger (x: number): boolean {
  const fraction = x - Math.floor(x)
  return fraction < FAST_PATH_ERROR || fraction > 1 - FAST_PATH_ERROR
}

/** writeShortest's answer for a normal float, or -1 when the fast path cannot be sure of it. */
function writeShortestFast (ieeeMantissa: number, ieeeExponent: number, view: DataView, at: number): number {
  const scale = FAST_PATH_SCALE[ieeeExponent]
  if (scale === 0) return -1
  const mv = 4 * (ieeeMantissa | 0x800000)
  const value = mv * scale
  const lower = (mv - (ieeeMantissa === 0 ? 1 : 2)) * scale
  const upper = (mv + 2) * scale
  // Twice the value is near an integer when the value is near an integer or a half.
  if (nearInteger(lower) || nearInteger(upper) || nearInteger(2 * value)) return -1
  const vr = Math.floor(value) | 0
  // The first digit below vr, with its fraction: all writeRounded asks of it is whether it is 5 or
  // more, and computing it rather than branching on the fraction avoids a coin-toss branch.
  const nextDigit = (value - vr) * 10
  const e10 = FAST_PATH_EXPONENT10[ieeeExponent]
  return writeRounded(vr, Math.floor(upper) | 0, Math.floor(lower) | 0, nextDigit, e10, view, at)
}

// ---- Printing, in JavaScript's Number-to-String layout (valid JSON) ----
//
// Bytes go into a scratch buffer through a DataView, up to four at a time: in V8 a store costs
// about the same whatever its width. A wide store may run past the text's end, into SLACK spare
// bytes at the buffer's end or over bytes that later stores overwrite.

const CHAR_0 = 0x30
const CHAR_MINUS = 0x2d
const CHAR_PLUS = 0x2b
const CHAR_DOT = 0x2e
const CHAR_E = 0x65
const FOUR_ZEROS = 0x30303030

/**
 * The longest float32 printing: below 1e21 a value prints in full, so "-100000000000000000000"
 * and its like (a sign and 21 digits) are longer than any exponent form ("-1.2345678e-38").
 */
export const MAX_FLOAT_CHARS = 22
/** Bytes a write may store past the text it writes: room to leave after any text written. */
export const SLACK = 8

const POW10 = Float64Array.from({ length: 10 }, (_, n) => 10 ** n)

// 0 to 9999 zero-padded to four digits, as little-endian u32s: 42 is '0' '0' '4' '2'.
const DIGIT_QUADS = Uint32Array.from({ length: 10000 }, (_, n) => {
  const [a, b, c, d] = Array.from(String(n).padStart(4, '0'), char => char.charCodeAt(0))
  return (a | b << 8 | c << 16 | d << 24) >>> 0
})

function decimalLength (digits: number): number {
  // Longest first: most floats need eight or nine digits.
  if (digits >= 100000000) return 9
  if (digits >= 10000000) return 8
  if (digits >= 1000000) return 7
  if (digits >= 100000) return 6
  if (digits >= 10000) return 5
  if (digits >= 1000) return 4
  if (digits >= 100) return 3
  if (digits >= 10) return 2
  return 1
}

/** Writes `value` (under 10^length, length up to 9) as exactly `length` digits; returns the end. */
function writeDigits (value: number, length: number, view: DataView, at: number): number {
  if (length > 8) {
    const top = (value / 100000000) | 0
    view.setUint8(at++, CHAR_0 + top)
    value -= top * 100000000
    length = 8
  }
  if (length > 4) {
    const high = (value / 10000) | 0
    view.setUint32(at, DIGIT_QUADS[high] >>> (8 * (8 - length)), true)
    at += length - 4
    value -= high * 10000
    length = 4
  }
  view.setUint32(at, DIGIT_QUADS[value] >>> (8 * (4 - length)), true)
  return at + length
}

function writeZeros (count: number, view: DataView, at: number): number {
  for (let i = 0; i < count; i += 4) view.setUint32(at + i, FOUR_ZEROS, true)
  return at + count
}

/** Writes digits * 10^exponent as Number.prototype.toString would lay it out; returns the end. */
function writeDecimal (digits: number, exponent: number, view: DataView, at: number): number {
  const length = decimalLength(digits)
  // The value is 0.d1d2d3... * 10^point.
  const point = exponent + length
  if (point <= 0 && point > -6) {
    // 0.000ddd, the common case for vector values. Eight zeros cover the up to five needed, and
    // the digits overwrite the rest.
    view.setUint16(at, CHAR_0 | CHAR_DOT << 8, true)
    view.setUint32(at + 2, FOUR_ZEROS, true)
    view.setUint32(at + 6, FOUR_ZEROS, true)
    return writeDigits(digits, length, view, at + 2 - point)
  }
  return writeOtherLayouts(digits, length, point, view, at)
}

/**
 * writeDecimal for the layouts other than 0.000ddd, kept out of it so that it stays small enough
 * for V8 to inline into the loop over a vector's values.
 */
function writeOtherLayouts (digits: number, length: number, point: number, view: DataView, at: number): number {
  if (point > 0 && point <= 21) {
    if (point >= length) return writeZeros(point - length, view, writeDigits(digits, length, view, at))
    const fractionLength = length - point
    const integer = (digits / POW10[fractionLength]) | 0
    at = writeDigits(integer, point, view, at)
    view.setUint8(at, CHAR_DOT)
    return writeDigits(digits - integer * POW10[fractionLength], fractionLength, view, at + 1)
  }
  const leading = (digits / POW10[length - 1]) | 0
  view.setUint8(at++, CHAR_0 + leading)
  if (length > 1) {
    view.setUint8(at++, CHAR_DOT)
    at = writeDigits(digits - leading * POW10[length - 1], length - 1, view, at)
  }
  const scientificExponent = point - 1
  view.setUint16(at, CHAR_E | (scientificExponent < 0 ? CHAR_MINUS : CHAR_PLUS) << 8, true)
  const magnitude = Math.abs(scientificExponent)
  return writeDigits(magnitude, magnitude < 10 ? 1 : 2, view, at + 2)
}

/** Writes the float32 with these IEEE bits; returns the end. -0 prints as "-0", so no bits are lost. */
export function writeFloat32Bits (bits: number, view: DataView, at: number): number {
  // The minus sign is written either way and kept only for negative values: the sign of random
  // values is a coin toss, which a branch would keep mispredicting.
  view.setUint8(at, CHAR_MINUS)
  at += bits >>> 31
  const ieeeExponent = (bits >>> 23) & 0xff
  const ieeeMantissa = bits & 0x7fffff
  if (ieeeExponent === 0xff) throw new RangeError('a vector value is not a finite 32-bit float')
  if (ieeeExponent === 0 && ieeeMantissa === 0) {
    view.setUint8(at, CHAR_0)
    return at + 1
  }
  const end = writeShortestFast(ieeeMantissa, ieeeExponent, view, at)
  return end >= 0 ? end : writeShortest(ieeeMantissa, ieeeExponent, view, at)
}

// formatFloat32 writes its bytes here and reads them back as one latin1 string.
const scratch = Buffer.allocUnsafeSlow(MAX_FLOAT_CHARS + SLACK)
const scratchView = new DataView(scratch.buffer, scratch.byteOffset, scratch.length)

const float32 = new Float32Array(1)
const float32Bits = new Int32Array(float32.buffer)

/**
 * The shortest decimal string that reads back (Math.fround(Number(s))) to the same 32-bit float,
 * the closest to it when several are as short, laid out as Number.prototype.toString would lay it
 * out. `value` is rounded to float32 first; it must be finite as a float32.
 */
export function formatFloat32 (value: number): string {
  float32[0] = value
  const end = writeFloat32Bits(float32Bits[0], scratchView, 0)
  return scratch.toString('latin1', 0, end)
}

