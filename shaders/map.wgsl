// The explorer's map: every point as an instanced quad (a disc, or its thumbnail from the atlas
// when zoomed in), the similarity graph's edges as thin quads between points, and a small overlay
// of highlighted points drawn on top. Everything is pulled from storage buffers by instance
// index, so a layout change uploads positions once and edges and overlay follow without uploads.
//
// The target is egui's framebuffer: gamma-space colours, premultiplied alpha.

struct Camera {
    // World position at the middle of the view.
    center: vec2<f32>,
    // Half the view's size, in points.
    half_size: vec2<f32>,
    // Points per world unit.
    scale: f32,
    // Radius of a disc of size 1, in points.
    point_radius: f32,
    // Side of a thumbnail of size 1, in points; 0 draws discs only.
    thumb_size: f32,
    // Alpha of points that are not highlighted (1 when nothing is selected).
    dim_alpha: f32,
    pixels_per_point: f32,
    // Width of an edge, in points.
    edge_width: f32,
    // Atlas slots per row of a layer.
    atlas_slots: f32,
    _pad: f32,
};

struct Point {
    position: vec2<f32>,
    // Relative size (node degree, say): 1 is the plain size.
    size: f32,
    // Atlas slot: layer << 16 | slot, or 0xffffffff without a thumbnail.
    tile: u32,
};

struct Overlay {
    // The point drawn again on top.
    index: u32,
    colour: u32,
    // 0: full colour; 1: a ring around it; 2: full colour, larger.
    style: u32,
    _pad: u32,
};

struct Edge {
    a: u32,
    b: u32,
    colour: u32,
    _pad: u32,
};

@group(0) @binding(0) var<uniform> camera: Camera;
@group(0) @binding(1) var<storage, read> points: array<Point>;
@group(0) @binding(2) var<storage, read> colours: array<u32>;
@group(0) @binding(3) var<storage, read> overlay: array<Overlay>;
@group(0) @binding(4) var<storage, read> edges: array<Edge>;
@group(0) @binding(5) var atlas: texture_2d_array<f32>;
@group(0) @binding(6) var atlas_sampler: sampler;

const NO_TILE: u32 = 0xffffffffu;

struct PointOut {
    @builtin(position) position: vec4<f32>,
    // Where in the quad, -1..1 on both axes.
    @location(0) local: vec2<f32>,
    @location(1) colour: vec4<f32>,
    @location(2) @interpolate(flat) tile: u32,
    // Radius of the disc and half side of the quad, in pixels; style.
    @location(3) @interpolate(flat) radius_px: f32,
    @location(4) @interpolate(flat) half_px: f32,
    @location(5) @interpolate(flat) style: u32,
};

fn corner(vertex: u32) -> vec2<f32> {
    // Two triangles: (-1,-1) (1,-1) (-1,1), (-1,1) (1,-1) (1,1).
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(-1.0, 1.0),
        vec2<f32>(-1.0, 1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
    );
    return corners[vertex];
}

fn to_clip(screen_points: vec2<f32>) -> vec4<f32> {
    let ndc = screen_points / camera.half_size;
    return vec4<f32>(ndc.x, -ndc.y, 0.0, 1.0);
}

fn point_quad(index: u32, vertex: u32, colour: vec4<f32>, style: u32) -> PointOut {
    let p = points[index];
    let local = corner(vertex);
    var radius = camera.point_radius * p.size;
    if (style == 2u) {
        radius = radius * 1.6;
    }
    var half = radius + 1.0 / camera.pixels_per_point;
    if (style == 1u) {
        half = radius + 4.0;
    }
    let thumbs = camera.thumb_size > 0.0 && p.tile != NO_TILE;
    if (thumbs) {
        half = max(half, 0.5 * camera.thumb_size * p.size);
    }
    let screen = (p.position - camera.center) * camera.scale + local * half;
    var out: PointOut;
    out.position = to_clip(screen);
    out.local = local;
    out.colour = colour;
    out.tile = select(NO_TILE, p.tile, thumbs);
    out.radius_px = radius * camera.pixels_per_point;
    out.half_px = half * camera.pixels_per_point;
    out.style = style;
    return out;
}

@vertex
fn vs_points(@builtin(vertex_index) vertex: u32, @builtin(instance_index) index: u32) -> PointOut {
    var colour = unpack4x8unorm(colours[index]);
    colour.a = colour.a * camera.dim_alpha;
    return point_quad(index, vertex, colour, 0u);
}

@vertex
fn vs_overlay(@builtin(vertex_index) vertex: u32, @builtin(instance_index) index: u32) -> PointOut {
    let o = overlay[index];
    return point_quad(o.index, vertex, unpack4x8unorm(o.colour), o.style);
}

fn premultiplied(colour: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(colour.rgb * colour.a, colour.a);
}

@fragment
fn fs_points(in: PointOut) -> @location(0) vec4<f32> {
    let d = length(in.local) * in.half_px;
    if (in.tile != NO_TILE) {
        let layer = i32(in.tile >> 16u);
        let slot = f32(in.tile & 0xffffu);
        let cell = vec2<f32>(slot % camera.atlas_slots, floor(slot / camera.atlas_slots));
        let uv = (cell + (in.local * vec2<f32>(0.5, 0.5) + vec2<f32>(0.5, 0.5))) / camera.atlas_slots;
        let texel = textureSampleLevel(atlas, atlas_sampler, uv, layer, 0.0);
        // An empty slot (alpha 0) is a thumbnail not loaded yet: the disc stands in.
        if (texel.a > 0.0) {
            // A frame in the point's colour keeps the colour coding readable over pictures.
            let edge = max(abs(in.local.x), abs(in.local.y)) * in.half_px;
            if (edge > in.half_px - 2.0) {
                return premultiplied(in.colour);
            }
            return premultiplied(vec4<f32>(texel.rgb, in.colour.a));
        }
    }
    if (in.style == 1u) {
        // A ring just outside the disc.
        let ring = 1.0 - clamp(abs(d - in.radius_px - 2.0) - 1.0, 0.0, 1.0);
        return premultiplied(vec4<f32>(in.colour.rgb, in.colour.a * ring));
    }
    let coverage = clamp(in.radius_px - d + 0.5, 0.0, 1.0);
    if (coverage <= 0.0) {
        discard;
    }
    return premultiplied(vec4<f32>(in.colour.rgb, in.colour.a * coverage));
}

struct EdgeOut {
    @builtin(position) position: vec4<f32>,
    @location(0) colour: vec4<f32>,
    // Across the edge, -1..1.
    @location(1) across: f32,
};

@vertex
fn vs_edges(@builtin(vertex_index) vertex: u32, @builtin(instance_index) index: u32) -> EdgeOut {
    let e = edges[index];
    let a = (points[e.a].position - camera.center) * camera.scale;
    let b = (points[e.b].position - camera.center) * camera.scale;
    let along = b - a;
    let length_points = max(length(along), 1e-6);
    let normal = vec2<f32>(-along.y, along.x) / length_points;
    let local = corner(vertex);
    let half_width = 0.5 * camera.edge_width + 0.5 / camera.pixels_per_point;
    let base = select(a, b, local.x > 0.0);
    var out: EdgeOut;
    out.position = to_clip(base + normal * local.y * half_width);
    out.colour = unpack4x8unorm(e.colour);
    out.across = local.y;
    return out;
}

@fragment
fn fs_edges(in: EdgeOut) -> @location(0) vec4<f32> {
    let half_px = (0.5 * camera.edge_width + 0.5 / camera.pixels_per_point) * camera.pixels_per_point;
    let coverage = clamp((1.0 - abs(in.across)) * half_px, 0.0, 1.0);
    return premultiplied(vec4<f32>(in.colour.rgb, in.colour.a * coverage));
}
