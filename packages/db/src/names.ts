/** Random two-word run names in Prefect's style ("crimson-hyena"). */
import { randomInt } from "node:crypto";

const ADJECTIVES = [
  "amber", "ancient", "arcane", "azure", "benevolent", "bold", "brave", "bright", "brisk", "calm", "candid", "capable",
  "careful", "cheerful", "classic", "clever", "cobalt", "copper", "cosmic", "crimson", "curious", "daring", "dazzling",
  "determined", "diligent", "eager", "earnest", "elegant", "emerald", "energetic", "fearless", "festive", "fiery",
  "gentle", "gifted", "glorious", "golden", "graceful", "handsome", "hardy", "heavenly", "honest", "humble", "icy",
  "imposing", "indigo", "jolly", "keen", "kind", "lavender", "lively", "loyal", "lucky", "magnetic", "majestic",
  "marvellous", "mellow", "merry", "mighty", "modest", "nimble", "noble", "olive", "opal", "optimistic", "patient",
  "peaceful", "pearl", "placid", "polite", "proud", "quick", "quiet", "radiant", "rapid", "resolute", "robust", "rugged",
  "ruby", "sage", "sapphire", "scarlet", "serene", "shiny", "silver", "sincere", "smart", "sparkling", "spirited",
  "steady", "stellar", "sturdy", "sunny", "swift", "tactful", "teal", "tidy", "tranquil", "true", "upbeat", "valiant",
  "vigilant", "violet", "vivid", "warm", "wise", "witty", "zealous",
];

const ANIMALS = [
  "albatross", "alligator", "alpaca", "anaconda", "angelfish", "antelope", "armadillo", "badger", "barracuda", "bat",
  "beagle", "bear", "beaver", "bison", "bobcat", "buffalo", "butterfly", "camel", "caracal", "cardinal", "caribou",
  "cassowary", "catfish", "chameleon", "cheetah", "chicken", "chipmunk", "cobra", "condor", "cormorant", "cougar",
  "coyote", "crab", "crane", "cricket", "crocodile", "crow", "cuckoo", "dingo", "dolphin", "donkey", "dove",
  "dragonfly", "duck", "eagle", "eel", "elephant", "elk", "emu", "falcon", "ferret", "finch", "flamingo", "fox",
  "frog", "gazelle", "gecko", "gerbil", "gibbon", "giraffe", "goose", "gorilla", "grasshopper", "grouse", "hamster",
  "hare", "hawk", "hedgehog", "heron", "hippo", "hornet", "hound", "hummingbird", "hyena", "ibex", "ibis", "iguana",
  "impala", "jackal", "jaguar", "jellyfish", "kangaroo", "kestrel", "kingfisher", "kiwi", "koala", "labradoodle",
  "lemming", "lemur", "leopard", "lion", "lizard", "llama", "lobster", "lynx", "macaw", "magpie", "mamba", "manatee",
  "mandrill", "marmot", "meerkat", "mink", "mole", "mongoose", "moose", "narwhal", "newt", "nightingale", "ocelot",
  "octopus", "okapi", "orca", "ostrich", "otter", "owl", "panda", "panther", "parrot", "partridge", "pelican",
  "penguin", "pheasant", "pig", "platypus", "pony", "porcupine", "porpoise", "puffin", "puma", "python", "quail",
  "rabbit", "raccoon", "raven", "reindeer", "rhino", "robin", "salamander", "salmon", "seahorse", "seal", "shark",
  "sheep", "skunk", "sloth", "snail", "sparrow", "spider", "squid", "squirrel", "starfish", "stingray", "stork",
  "swan", "tapir", "tarsier", "termite", "tiger", "toad", "tortoise", "toucan", "trout", "turkey", "turtle",
  "viper", "vulture", "wallaby", "walrus", "wasp", "weasel", "whale", "wildebeest", "wolf", "wolverine", "wombat",
  "woodpecker", "yak", "zebra",
];

export function randomRunName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${ANIMALS[randomInt(ANIMALS.length)]}`;
}
