//! What the demo's clips are made of, and the words their captions use for it: shapes, colours,
//! sizes, textures, motions and backgrounds, each with its paraphrases.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Circle,
    Ring,
    Square,
    Triangle,
    Star,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
    White,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    Small,
    Large,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Texture {
    Solid,
    Striped,
    Dotted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Motion {
    Left,
    Right,
    Up,
    Down,
    Spin,
    Bounce,
    Grow,
    Shrink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Background {
    Dark,
    Light,
    Sky,
    Grass,
    Static,
}

pub const SHAPES: [Shape; 5] = [
    Shape::Circle,
    Shape::Ring,
    Shape::Square,
    Shape::Triangle,
    Shape::Star,
];
pub const COLOURS: [Colour; 7] = [
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Purple,
    Colour::Orange,
    Colour::White,
];
pub(super) const SIZES: [Size; 2] = [Size::Small, Size::Large];
pub(super) const TEXTURES: [Texture; 3] = [Texture::Solid, Texture::Striped, Texture::Dotted];
pub(super) const MOTIONS: [Motion; 8] = [
    Motion::Left,
    Motion::Right,
    Motion::Up,
    Motion::Down,
    Motion::Spin,
    Motion::Bounce,
    Motion::Grow,
    Motion::Shrink,
];
pub const BACKGROUNDS: [Background; 5] = [
    Background::Dark,
    Background::Light,
    Background::Sky,
    Background::Grass,
    Background::Static,
];

impl Shape {
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Shape::Circle => &["circle", "ball", "disc"],
            Shape::Ring => &["ring", "hoop", "donut"],
            Shape::Square => &["square", "box", "block"],
            Shape::Triangle => &["triangle", "three-sided shape"],
            Shape::Star => &["star", "five-pointed star"],
        }
    }

    /// A spin is only visible on a shape without rotational symmetry.
    pub(super) fn shows_spin(self) -> bool {
        !matches!(self, Shape::Circle | Shape::Ring)
    }
}

impl Colour {
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Colour::Red => &["red", "crimson", "scarlet"],
            Colour::Green => &["green", "emerald"],
            Colour::Blue => &["blue", "navy"],
            Colour::Yellow => &["yellow", "golden"],
            Colour::Purple => &["purple", "violet"],
            Colour::Orange => &["orange", "amber"],
            Colour::White => &["white", "pale"],
        }
    }

    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [220.0, 40.0, 40.0],
            Colour::Green => [40.0, 175.0, 60.0],
            Colour::Blue => [40.0, 80.0, 225.0],
            Colour::Yellow => [240.0, 210.0, 40.0],
            Colour::Purple => [150.0, 60.0, 195.0],
            Colour::Orange => [245.0, 140.0, 25.0],
            Colour::White => [245.0, 245.0, 245.0],
        }
    }
}

impl Size {
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Size::Small => &["small", "little", "tiny"],
            Size::Large => &["large", "big", "huge"],
        }
    }

    /// Radius as a fraction of the frame's shorter side.
    pub(super) fn radius(self) -> f32 {
        match self {
            Size::Small => 0.13,
            Size::Large => 0.24,
        }
    }
}

impl Texture {
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Texture::Solid => &["plain", "solid"],
            Texture::Striped => &["striped", "stripy"],
            Texture::Dotted => &["dotted", "spotted"],
        }
    }
}

impl Motion {
    pub fn phrases(self) -> &'static [&'static str] {
        match self {
            Motion::Left => &[
                "drifts left",
                "moves to the left",
                "slides leftwards",
                "glides to the left",
            ],
            Motion::Right => &[
                "drifts right",
                "moves to the right",
                "slides rightwards",
                "glides to the right",
            ],
            Motion::Up => &["rises", "moves up", "floats upwards", "climbs"],
            Motion::Down => &["falls", "sinks", "moves down", "drops downwards"],
            Motion::Spin => &["spins", "rotates", "turns in place", "twirls"],
            Motion::Bounce => &["bounces", "hops up and down", "jumps", "keeps bouncing"],
            Motion::Grow => &["grows", "gets bigger", "expands", "swells"],
            Motion::Shrink => &["shrinks", "gets smaller", "contracts", "dwindles"],
        }
    }
}

impl Background {
    pub fn phrases(self) -> &'static [&'static str] {
        match self {
            Background::Dark => &["on a dark background", "against black"],
            Background::Light => &["on a light background", "against a pale backdrop"],
            Background::Sky => &["in a blue sky", "against the sky"],
            Background::Grass => &["over green grass", "on a lawn"],
            Background::Static => &["over noisy static", "on a grainy background"],
        }
    }

    /// Whether `colour` stands out on this background (no white shapes on white, ...).
    pub(super) fn contrasts_with(self, colour: Colour) -> bool {
        !matches!(
            (self, colour),
            (Background::Light, Colour::White)
                | (Background::Light, Colour::Yellow)
                | (Background::Grass, Colour::Green)
                | (Background::Sky, Colour::Blue)
                | (Background::Dark, Colour::Purple)
        )
    }
}
