-- lib/bytes.lua: the bytes the JSON scanner looks for.

local QUOTE, BACKSLASH, COMMA, COLON = 34, 92, 44, 58
local LBRACE, RBRACE, LBRACKET, RBRACKET = 123, 125, 91, 93
local MINUS, ZERO = 45, 48
local LETTER_U, LETTER_T, LETTER_F, LETTER_N = 117, 116, 102, 110
-- JSON white space: space, tab, line feed, carriage return.
local SPACE, TAB, LF, CR = 32, 9, 10, 13
-- The characters that may follow a backslash in a JSON string, but for u.
local SIMPLE_ESCAPES = {
  [QUOTE] = true, [BACKSLASH] = true, [47] = true, -- \" \\ \/
  [98] = true, [102] = true, [110] = true, [114] = true, [116] = true, -- \b \f \n \r \t
}
