-- Tollgate GCRA: checks every bucket of one decision and, when all allow and a token
-- is to be taken, stores every new TAT, in one atomic step. The arithmetic is that of
-- tollgate_core::throttle::Gcra::check, exactly, for every non-negative i64:
-- Redis's Lua numbers are doubles (exact only below 2^53), so integers are kept as
-- little-endian arrays of base-10^7 limbs and stored as decimal strings.
--
-- KEYS[i]      bucket i (already namespaced by the caller's prefix)
-- ARGV[1]      now, ms since the epoch (the caller's clock, never Redis TIME)
-- ARGV[2]      "1" to take a token when every bucket allows, "0" to look only
-- ARGV[3]      expiry margin in ms added to each stored TAT's lifetime
-- ARGV[2+2i]   capacity of bucket i (1 .. 2^32-1)
-- ARGV[3+2i]   interval of bucket i in ms (1 .. 2^63-1)
--
-- Reply: { taken, then per bucket: allowed, available, new_tat, retry_after_ms },
-- every element a decimal string.

local B = 10000000

local function trim(a)
  while #a > 0 and a[#a] == 0 do
    a[#a] = nil
  end
  return a
end

local function big(s, what)
  if type(s) ~= 'string' or not string.match(s, '^%d+$') or #s > 19 then
    error('tollgate gcra: ' .. what .. ' is not a non-negative 64-bit integer: ' .. tostring(s))
  end
  local r = {}
  local i = #s
  while i > 0 do
    local j = math.max(1, i - 6)
    r[#r + 1] = tonumber(string.sub(s, j, i))
    i = j - 1
  end
  return trim(r)
end

-- An integer-valued double below 2^53.
local function small(n)
  local r = {}
  while n > 0 do
    local q = math.floor(n / B)
    r[#r + 1] = n - q * B
    n = q
  end
  return r
end

local function cmp(a, b)
  if #a ~= #b then
    return (#a < #b) and -1 or 1
  end
  for i = #a, 1, -1 do
    if a[i] ~= b[i] then
      return (a[i] < b[i]) and -1 or 1
    end
  end
  return 0
end

local function add(a, b)
  local r, carry = {}, 0
  for i = 1, math.max(#a, #b) do
    local s = (a[i] or 0) + (b[i] or 0) + carry
    if s >= B then
      r[i] = s - B
      carry = 1
    else
      r[i] = s
      carry = 0
    end
  end
  if carry > 0 then
    r[#r + 1] = carry
  end
  return r
end

-- a - b, for a >= b.
local function sub(a, b)
  local r, borrow = {}, 0
  for i = 1, #a do
    local d = a[i] - (b[i] or 0) - borrow
    if d < 0 then
      r[i] = d + B
      borrow = 1
    else
      r[i] = d
      borrow = 0
    end
  end
  return trim(r)
end

-- Limb products stay below 10^14 < 2^53, so every step is exact.
local function mul(a, b)
  local r = {}
  for i = 1, #a + #b do
    r[i] = 0
  end
  for i = 1, #a do
    local carry = 0
    for j = 1, #b do
      local t = r[i + j - 1] + a[i] * b[j] + carry
      carry = math.floor(t / B)
      r[i + j - 1] = t - carry * B
    end
    local k = i + #b
    while carry > 0 do
      local t = r[k] + carry
      carry = math.floor(t / B)
      r[k] = t - carry * B
      k = k + 1
    end
  end
  return trim(r)
end

local function approx(a)
  local x = 0
  for i = #a, 1, -1 do
    x = x * B + a[i]
  end
  return x
end

local function str(a)
  if #a == 0 then
    return '0'
  end
  local parts = { string.format('%d', a[#a]) }
  for i = #a - 1, 1, -1 do
    parts[#parts + 1] = string.format('%07d', a[i])
  end
  return table.concat(parts)
end

local I64_MAX = big('9223372036854775807', 'i64::MAX')
-- Lifetimes longer than this (about 31,700 years) are stored without expiry.
local LONGEST_TTL = big('1000000000000000', 'longest ttl')

-- A non-negative i64 given as a decimal string.
local function int(s, what)
  local r = big(s, what)
  if cmp(r, I64_MAX) > 0 then
    error('tollgate gcra: ' .. what .. ' is past i64::MAX: ' .. s)
  end
  return r
end

local function min_i64(a)
  if cmp(a, I64_MAX) > 0 then
    return I64_MAX
  end
  return a
end

-- Gcra::check: tat = max(tat, now); backlog = tat - now; tau = (C-1)*T (saturating);
-- allowed iff backlog <= tau; available = min((tau - backlog) / T + 1, C);
-- new_tat = tat + T (saturating); retry = backlog - tau.
local function check(tat, now, capacity, interval)
  local tau = min_i64(mul(small(capacity - 1), interval))
  local eff = now
  if tat and cmp(tat, now) > 0 then
    eff = tat
  end
  local backlog = sub(eff, now)
  if cmp(backlog, tau) <= 0 then
    local d = sub(tau, backlog)
    -- floor(d / T), capped at C: a double estimate, made exact by multiplying back.
    local q = math.floor(approx(d) / approx(interval))
    if q > capacity then
      q = capacity
    end
    if q < 0 then
      q = 0
    end
    while q > 0 and cmp(mul(small(q), interval), d) > 0 do
      q = q - 1
    end
    while q < capacity and cmp(mul(small(q + 1), interval), d) <= 0 do
      q = q + 1
    end
    local available = q + 1
    if available > capacity then
      available = capacity
    end
    return true, available, min_i64(add(eff, interval)), {}
  end
  return false, 0, eff, sub(backlog, tau)
end

local now = int(ARGV[1], 'now')
local take = ARGV[2] == '1'
local margin = int(ARGV[3], 'margin')
local n = #KEYS
if #ARGV ~= 3 + 2 * n then
  error('tollgate gcra: expected ' .. (3 + 2 * n) .. ' arguments, got ' .. #ARGV)
end

-- Read every TAT first: a bucket named twice is checked twice against one TAT.
local tats = {}
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v then
    tats[i] = int(v, 'stored TAT of ' .. KEYS[i])
  else
    tats[i] = false
  end
end

local reply = { '0' }
local news = {}
local all = true
for i = 1, n do
  local capacity = tonumber(ARGV[2 + 2 * i])
  if not capacity or capacity < 1 or capacity > 4294967295 or capacity ~= math.floor(capacity) then
    error('tollgate gcra: bad capacity: ' .. tostring(ARGV[2 + 2 * i]))
  end
  local interval = int(ARGV[3 + 2 * i], 'interval')
  if #interval == 0 then
    error('tollgate gcra: the interval must be at least 1 ms')
  end
  local allowed, available, new_tat, retry = check(tats[i] or nil, now, capacity, interval)
  all = all and allowed
  news[i] = new_tat
  reply[#reply + 1] = allowed and '1' or '0'
  reply[#reply + 1] = string.format('%d', available)
  reply[#reply + 1] = str(new_tat)
  reply[#reply + 1] = str(retry)
end

if all and take then
  -- In order, so a bucket named twice keeps the last update, like the engine's map.
  for i = 1, n do
    local ttl = add(sub(news[i], now), margin)
    if cmp(ttl, LONGEST_TTL) <= 0 then
      redis.call('SET', KEYS[i], str(news[i]), 'PX', str(ttl))
    else
      redis.call('SET', KEYS[i], str(news[i]))
    end
  end
  reply[1] = '1'
end

return reply
