-- macros.sql: exact-money helpers used by rating and billing. Amounts travel as integers in minor or micro
-- units, so no value ever passes through a binary float; every rounding names its method.

-- round_div(num, den, method): num / den rounded to a whole number by a named rule, den > 0.
-- half_up: halves away from zero; half_even: halves to the even neighbour (banker's rounding);
-- up: away from zero (any remainder rounds up in magnitude); down: toward zero (truncate).
create or replace macro round_div(num, den, method) as
    sign(num) * (
        case method
            when 'down' then abs(num) // den
            when 'up' then (abs(num) + den - 1) // den
            when 'half_up' then (2 * abs(num) + den) // (2 * den)
            when 'half_even' then
                abs(num) // den
                + case
                    when 2 * (abs(num) % den) > den then 1
                    when 2 * (abs(num) % den) = den then (abs(num) // den) % 2
                    else 0
                  end
            else error('unknown rounding method ' || method)
        end
    );

-- micros(x): a DECIMAL amount with at most 6 decimals as whole micro-units (exact). Below one million the
-- product fits the 18 digits of the amount's own DECIMAL (a 64-bit multiply); from one million on (a large one-time
-- charge, a wholesale total) it is taken in DECIMAL(38, 6), 128-bit and ~20x slower, so only where needed.
create or replace macro micros(x) as
    case
        when x > -1000000 and x < 1000000 then (x * 1000000)::hugeint
        else (x::decimal(38, 6) * 1000000)::hugeint
    end;

-- from_micros(n) / from_cents(n): whole units back to exact DECIMAL amounts.
create or replace macro from_micros(n) as (n::decimal(38, 0) * 0.000001)::decimal(18, 6);
create or replace macro from_cents(n) as (n::decimal(38, 0) * 0.01)::decimal(18, 2);

-- from_minor(n, minor_units): whole minor units of a currency (ISO 4217 exponent 0–3: JPY 0, USD 2, BHD 3)
-- back to an exact DECIMAL amount with 3 decimals (invoice money is stored as decimal(18, 3)).
create or replace macro from_minor(n, minor_units) as (
    n::decimal(38, 0) * case minor_units when 0 then 1.000 when 1 then 0.100 when 2 then 0.010 when 3 then 0.001
                                          else error('minor units above 3: ' || minor_units) end
)::decimal(18, 3);
