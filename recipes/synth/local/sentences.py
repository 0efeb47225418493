"""A small English grammar: numbers, times, dates, commands and short statements.

`sentence(rng)` returns one lower-case sentence, numbers spelled out in words (so that the
text espeak-ng reads and the transcript are the same words). The vocabulary is a few
hundred words; `vocabulary()` lists it.

    python local/sentences.py --num 5 --seed 1     # print a few
"""

import argparse
import random

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINAL_ONES = ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                "sixteenth", "seventeenth", "eighteenth", "nineteenth"]
ORDINAL_TENS = {"twenty": "twentieth", "thirty": "thirtieth"}
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

NAMES = ["anna", "ben", "carla", "david", "emma", "frank", "grace", "henry", "julia", "kevin",
         "laura", "martin", "nina", "oscar", "paula", "robert", "sarah", "thomas", "victor", "zoe"]
RELATIVES = ["mom", "dad", "my sister", "my brother", "grandma", "my uncle", "my aunt", "the doctor",
             "the office", "the school"]
CITIES = ["london", "paris", "berlin", "madrid", "rome", "tokyo", "boston", "chicago", "sydney",
          "toronto", "dublin", "vienna", "lisbon", "oslo", "cairo", "mumbai"]
ROOMS = ["kitchen", "bedroom", "living room", "bathroom", "garage", "hallway", "office", "garden",
         "basement", "dining room"]
DEVICES = ["lights", "heater", "fan", "radio", "television", "oven", "dishwasher", "washing machine",
           "coffee maker", "air conditioner", "alarm", "music"]
COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple", "brown", "grey"]
THINGS = ["milk", "bread", "eggs", "coffee", "apples", "rice", "cheese", "butter", "tea", "sugar",
          "tomatoes", "potatoes", "onions", "carrots", "bananas", "chicken", "fish", "pasta", "juice",
          "water"]
GENRES = ["jazz", "rock", "classical", "pop", "blues", "country", "folk", "reggae"]
ADJECTIVES = ["cold", "warm", "hot", "sunny", "cloudy", "windy", "rainy", "quiet", "busy", "late",
              "early", "small", "large", "new", "old", "heavy", "light", "clean", "full", "empty"]
ANIMALS = ["cat", "dog", "horse", "bird", "rabbit", "fox", "mouse", "cow", "sheep", "duck"]
PLACES = ["station", "airport", "library", "museum", "market", "park", "hospital", "bank", "bakery",
          "cinema", "beach", "hotel"]
VEHICLES = ["train", "bus", "plane", "ferry", "taxi", "flight"]
UNITS = ["minutes", "hours", "days", "weeks", "seconds"]
TASKS = ["buy milk", "call the bank", "water the plants", "feed the cat", "pay the rent",
         "book a table", "send the letter", "clean the car", "pick up the kids", "read the report"]


def number_words(n: int) -> str:
    """0 <= n < 10000 in words, British style: 'three hundred and twenty one'."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    if rest == 0:
        return number_words(n // 1000) + " thousand"
    return number_words(n // 1000) + " thousand" + (" and " if rest < 100 else " ") + number_words(rest)


def ordinal_words(n: int) -> str:
    """1 <= n <= 31 as an ordinal: 'twenty third'."""
    if n < 20:
        return ORDINAL_ONES[n]
    tens, ones = divmod(n, 10)
    if ones == 0:
        return ORDINAL_TENS[TENS[tens]]
    return TENS[tens] + " " + ORDINAL_ONES[ones]


def year_words(year: int) -> str:
    if 2000 <= year < 2010:
        return number_words(year)
    return number_words(year // 100) + " " + (number_words(year % 100) if year % 100 >= 10
                                               else "oh " + ONES[year % 100])


def time_words(rng: random.Random) -> str:
    """A clock time in one of several spoken styles: 'seven forty five p m', 'quarter to three'."""
    hour = rng.randint(1, 12)
    minute = rng.choice([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, rng.randint(1, 59)])
    minutes = "oh " + ONES[minute] if minute < 10 else number_words(minute)
    style = rng.randrange(4)
    if minute == 0:
        return f"{number_words(hour)} o'clock" if style < 2 else f"{number_words(hour)} {rng.choice(['a m', 'p m'])}"
    if style == 1 and minute in (15, 30, 45):
        return {15: f"quarter past {number_words(hour)}", 30: f"half past {number_words(hour)}",
                45: f"quarter to {number_words(hour % 12 + 1)}"}[minute]
    if style == 2 and minute <= 30:
        return f"{number_words(minute)} past {number_words(hour)}"
    if style == 3:
        return f"{number_words(hour)} {minutes} {rng.choice(['a m', 'p m'])}"
    return f"{number_words(hour)} {minutes}"


def date_words(rng: random.Random) -> str:
    month, day = rng.choice(MONTHS), ordinal_words(rng.randint(1, 28))
    style = rng.randrange(3)
    if style == 0:
        return f"the {day} of {month}"
    if style == 1:
        return f"{month} {day}"
    return f"{month} {day} {year_words(rng.randint(1950, 2030))}"


def _number(rng):
    return number_words(rng.choice([rng.randint(0, 20), rng.randint(20, 100), rng.randint(100, 1000),
                                    rng.randint(1000, 9999)]))


def _command(rng):
    c = rng.choice
    return c([
        lambda: f"turn {c(['on', 'off'])} the {c(ROOMS)} {c(DEVICES)}",
        lambda: f"switch {c(['on', 'off'])} the {c(DEVICES)}",
        lambda: f"set an alarm for {time_words(rng)}",
        lambda: f"set a timer for {number_words(rng.randint(1, 90))} {c(UNITS)}",
        lambda: f"remind me to {c(TASKS)} {c(['tomorrow', 'tonight', 'on ' + c(DAYS), 'at ' + time_words(rng)])}",
        lambda: f"call {c(NAMES + RELATIVES)}",
        lambda: f"send a message to {c(NAMES)}",
        lambda: f"play some {c(GENRES)} music in the {c(ROOMS)}",
        lambda: f"add {_number(rng) if rng.random() < 0.3 else number_words(rng.randint(1, 12))} {c(THINGS)} to the shopping list",
        lambda: f"what is the weather in {c(CITIES)} on {c(DAYS)}",
        lambda: f"book a {c(VEHICLES)} to {c(CITIES)} for {date_words(rng)}",
        lambda: f"{c(['open', 'close', 'lock'])} the {c(['front', 'back', 'garage'])} door",
        lambda: f"paint the {c(ROOMS)} {c(COLOURS)}",
        lambda: f"how far is the nearest {c(PLACES)}",
        lambda: f"set the temperature to {number_words(rng.randint(15, 28))} degrees",
        lambda: f"stop the {c(['timer', 'alarm', 'music'])}",
        lambda: f"show me the way to the {c(PLACES)}",
    ])()


def _statement(rng):
    c = rng.choice
    return c([
        lambda: f"the weather in {c(CITIES)} is {c(ADJECTIVES)} today",
        lambda: f"the {c(VEHICLES)} to {c(CITIES)} leaves at {time_words(rng)}",
        lambda: f"{c(NAMES)} was born on {date_words(rng)}",
        lambda: f"the meeting is on {c(DAYS)} at {time_words(rng)}",
        lambda: f"{c(NAMES)} lives in {c(CITIES)} with a {c(COLOURS)} {c(ANIMALS)}",
        lambda: f"the total is {_number(rng)} {c(['pounds', 'dollars', 'euros'])}",
        lambda: f"there are {number_words(rng.randint(2, 999))} {c(ANIMALS)}s on the farm".replace("sheeps", "sheep").replace("mouses", "mice"),
        lambda: f"the {c(PLACES)} opens at {time_words(rng)} on {c(DAYS)}",
        lambda: f"my {c(['car', 'bike', 'house', 'coat', 'bag'])} is {c(COLOURS)}",
        lambda: f"{c(NAMES)} and {c(NAMES)} went to the {c(PLACES)}",
        lambda: f"we need {number_words(rng.randint(2, 12))} {c(THINGS)} for dinner",
        lambda: f"room {_number(rng)} is on the {ordinal_words(rng.randint(1, 20))} floor",
        lambda: f"the {c(ROOMS)} is {c(ADJECTIVES)}",
        lambda: f"it is {time_words(rng)}",
        lambda: f"today is {c(DAYS)} {date_words(rng)}",
        lambda: f"the number is {' '.join(ONES[rng.randint(0, 9)] for _ in range(rng.randint(3, 8)))}",
    ])()


def sentence(rng: random.Random) -> str:
    """One random sentence, lower case, words separated by single spaces."""
    kind = rng.random()
    if kind < 0.4:
        text = _command(rng)
    elif kind < 0.85:
        text = _statement(rng)
    elif kind < 0.93:
        text = f"{rng.choice(['the code is', 'dial', 'my number is'])} {_number(rng)}"
    else:
        text = f"{'the date is ' if rng.random() < 0.5 else ''}{date_words(rng)}"
    return " ".join(text.split())


def vocabulary() -> list:
    """Every word the grammar can produce (from a large sample; the grammar is finite)."""
    rng = random.Random(0)
    words = set()
    for _ in range(50000):
        words.update(sentence(rng).split())
    return sorted(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocabulary", action="store_true", help="print the vocabulary instead")
    args = parser.parse_args()
    if args.vocabulary:
        words = vocabulary()
        print(f"{len(words)} words:\n" + " ".join(words))
        return
    rng = random.Random(args.seed)
    for _ in range(args.num):
        print(sentence(rng))


if __name__ == "__main__":
    main()
