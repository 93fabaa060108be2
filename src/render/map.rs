//! The map's GPU side: one shader module, three pipelines (edges, points, overlay) drawing from
//! storage buffers, and the paint callback that uploads what changed and draws.

use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};
use egui_wgpu::wgpu;
use egui_wgpu::{CallbackResources, CallbackTrait, ScreenDescriptor};

use super::MAP_SHADER;
use super::atlas::{Atlas, AtlasLayout};

/// A point without a thumbnail.
pub const NO_TILE: u32 = u32::MAX;

/// One point of the map, as the shader reads it.
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct GpuPoint {
    pub position: [f32; 2],
    /// Relative size: 1 is the plain disc.
    pub size: f32,
    /// Atlas slot (`AtlasLayout::tile`), or [`NO_TILE`].
    pub tile: u32,
}

/// How an overlay point is drawn on top of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayStyle {
    /// At full colour (selected, or highlighted while the rest is dimmed).
    Full = 0,
    /// A ring around the point (hover, the anchor).
    Ring = 1,
    /// At full colour and larger (a search hit).
    Large = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct GpuOverlay {
    pub index: u32,
    pub colour: u32,
    pub style: u32,
    pub _pad: u32,
}

impl GpuOverlay {
    pub fn new(index: u32, colour: u32, style: OverlayStyle) -> Self {
        Self {
            index,
            colour,
            style: style as u32,
            _pad: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct GpuEdge {
    pub a: u32,
    pub b: u32,
    pub colour: u32,
    pub _pad: u32,
}

impl GpuEdge {
    pub fn new(a: u32, b: u32, colour: u32) -> Self {
        Self {
            a,
            b,
            colour,
            _pad: 0,
        }
    }
}

/// RGBA (not premultiplied) as the shader unpacks it.
pub fn pack_colour(rgba: [u8; 4]) -> u32 {
    u32::from_le_bytes(rgba)
}

/// What the camera sees; the one uniform written every frame.
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct Camera {
    pub center: [f32; 2],
    /// Half the view, in points (set by the callback from its rectangle).
    pub half_size: [f32; 2],
    /// Points per world unit.
    pub scale: f32,
    pub point_radius: f32,
    /// Side of a thumbnail in points; 0 for discs only.
    pub thumb_size: f32,
    /// Alpha of the points that are not in the overlay.
    pub dim_alpha: f32,
    pub pixels_per_point: f32,
    pub edge_width: f32,
    pub atlas_slots: f32,
    pub _pad: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            center: [0.0, 0.0],
            half_size: [1.0, 1.0],
            scale: 1.0,
            point_radius: 3.0,
            thumb_size: 0.0,
            dim_alpha: 1.0,
            pixels_per_point: 1.0,
            edge_width: 1.0,
            atlas_slots: AtlasLayout::slots_per_row() as f32,
            _pad: 0.0,
        }
    }
}

/// A thumbnail to put in the atlas: `THUMB_SIDE`² RGBA pixels.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub tile: u32,
    pub rgba: Vec<u8>,
}

/// Changes waiting for the next frame's `prepare`. Each field replaces the whole array it names
/// (`None`: unchanged); thumbnails accumulate.
#[derive(Debug, Default)]
pub struct MapUploads {
    pub points: Option<Arc<[GpuPoint]>>,
    pub colours: Option<Arc<[u32]>>,
    pub overlay: Option<Arc<[GpuOverlay]>>,
    pub edges: Option<Arc<[GpuEdge]>>,
    /// A new atlas of this shape (its old contents go).
    pub atlas: Option<AtlasLayout>,
    pub thumbnails: Vec<Thumbnail>,
}

impl MapUploads {
    pub fn is_empty(&self) -> bool {
        self.points.is_none()
            && self.colours.is_none()
            && self.overlay.is_none()
            && self.edges.is_none()
            && self.atlas.is_none()
            && self.thumbnails.is_empty()
    }
}

/// How many bytes and items the last `prepare` uploaded, for the benchmark and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadCounts {
    pub frames: u64,
    /// Frames that uploaded anything beyond the camera.
    pub frames_with_uploads: u64,
    pub bytes: u64,
    pub thumbnails: u64,
}

/// The thumbnails uploaded per frame at most, so a project of thousands fills in over a few
/// frames instead of stalling one.
const THUMBNAILS_PER_FRAME: usize = 512;

struct Storage {
    buffer: wgpu::Buffer,
    capacity: u64,
    len: u32,
}

/// The GPU objects of the map, kept in egui's callback resources.
pub struct MapGpu {
    points_pipeline: wgpu::RenderPipeline,
    overlay_pipeline: wgpu::RenderPipeline,
    edges_pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    camera: wgpu::Buffer,
    points: Storage,
    colours: Storage,
    overlay: Storage,
    edges: Storage,
    atlas: Atlas,
    sampler: wgpu::Sampler,
    bind_group: wgpu::BindGroup,
    pub counts: UploadCounts,
}

impl std::fmt::Debug for MapGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapGpu")
            .field("points", &self.points.len)
            .field("edges", &self.edges.len)
            .field("overlay", &self.overlay.len)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

fn storage_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::VERTEX,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only: true },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn storage(device: &wgpu::Device, label: &str, capacity: u64) -> Storage {
    // Storage bindings may not be empty: at least one 16-byte element.
    let capacity = capacity.max(16).next_multiple_of(16);
    Storage {
        buffer: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: capacity,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
        capacity,
        len: 0,
    }
}

impl MapGpu {
    /// The pipelines for egui's render pass: its target format, one sample, no depth.
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("crossclr-map"),
            source: wgpu::ShaderSource::Wgsl(MAP_SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("crossclr-map"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX | wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: NonZeroU64::new(std::mem::size_of::<Camera>() as u64),
                    },
                    count: None,
                },
                storage_entry(1),
                storage_entry(2),
                storage_entry(3),
                storage_entry(4),
                wgpu::BindGroupLayoutEntry {
                    binding: 5,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2Array,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 6,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("crossclr-map"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |label: &str, vertex: &str, fragment: &str| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &module,
                    entry_point: Some(vertex),
                    buffers: &[],
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                },
                primitive: wgpu::PrimitiveState::default(),
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some(fragment),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: target_format,
                        blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let camera = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("crossclr-map-camera"),
            size: std::mem::size_of::<Camera>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("crossclr-map-atlas"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let points = storage(device, "crossclr-map-points", 0);
        let colours = storage(device, "crossclr-map-colours", 0);
        let overlay = storage(device, "crossclr-map-overlay", 0);
        let edges = storage(device, "crossclr-map-edges", 0);
        let atlas = Atlas::new(device, AtlasLayout::for_thumbnails(0));
        let bind_group = Self::bind(
            device, &layout, &camera, &points, &colours, &overlay, &edges, &atlas, &sampler,
        );
        Self {
            points_pipeline: pipeline("crossclr-map-points", "vs_points", "fs_points"),
            overlay_pipeline: pipeline("crossclr-map-overlay", "vs_overlay", "fs_points"),
            edges_pipeline: pipeline("crossclr-map-edges", "vs_edges", "fs_edges"),
            layout,
            camera,
            points,
            colours,
            overlay,
            edges,
            atlas,
            sampler,
            bind_group,
            counts: UploadCounts::default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bind(
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        camera: &wgpu::Buffer,
        points: &Storage,
        colours: &Storage,
        overlay: &Storage,
        edges: &Storage,
        atlas: &Atlas,
        sampler: &wgpu::Sampler,
    ) -> wgpu::BindGroup {
        fn buffer(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
            wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            }
        }
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("crossclr-map"),
            layout,
            entries: &[
                buffer(0, camera),
                buffer(1, &points.buffer),
                buffer(2, &colours.buffer),
                buffer(3, &overlay.buffer),
                buffer(4, &edges.buffer),
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: wgpu::BindingResource::TextureView(atlas.view()),
                },
                wgpu::BindGroupEntry {
                    binding: 6,
                    resource: wgpu::BindingResource::Sampler(sampler),
                },
            ],
        })
    }

    /// Applies what changed; returns whether the bind group must be made again (a buffer grew).
    fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &mut Storage,
        label: &str,
        data: &[u8],
        len: usize,
    ) -> bool {
        let needed = data.len() as u64;
        let regrown = needed > target.capacity;
        if regrown {
            *target = storage(device, label, needed.next_power_of_two());
        }
        if !data.is_empty() {
            queue.write_buffer(&target.buffer, 0, data);
        }
        target.len = len as u32;
        regrown
    }

    /// Takes everything `uploads` holds onto the GPU.
    pub fn apply(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, uploads: &mut MapUploads) {
        self.counts.frames += 1;
        if uploads.is_empty() {
            return;
        }
        self.counts.frames_with_uploads += 1;
        let mut rebind = false;
        if let Some(points) = uploads.points.take() {
            let bytes = bytemuck::cast_slice(&points);
            self.counts.bytes += bytes.len() as u64;
            rebind |= Self::upload(
                device,
                queue,
                &mut self.points,
                "crossclr-map-points",
                bytes,
                points.len(),
            );
        }
        if let Some(colours) = uploads.colours.take() {
            let bytes = bytemuck::cast_slice(&colours);
            self.counts.bytes += bytes.len() as u64;
            rebind |= Self::upload(
                device,
                queue,
                &mut self.colours,
                "crossclr-map-colours",
                bytes,
                colours.len(),
            );
        }
        if let Some(overlay) = uploads.overlay.take() {
            let bytes = bytemuck::cast_slice(&overlay);
            self.counts.bytes += bytes.len() as u64;
            rebind |= Self::upload(
                device,
                queue,
                &mut self.overlay,
                "crossclr-map-overlay",
                bytes,
                overlay.len(),
            );
        }
        if let Some(edges) = uploads.edges.take() {
            let bytes = bytemuck::cast_slice(&edges);
            self.counts.bytes += bytes.len() as u64;
            rebind |= Self::upload(
                device,
                queue,
                &mut self.edges,
                "crossclr-map-edges",
                bytes,
                edges.len(),
            );
        }
        if let Some(layout) = uploads.atlas.take() {
            self.atlas = Atlas::new(device, layout);
            rebind = true;
        }
        let take = uploads.thumbnails.len().min(THUMBNAILS_PER_FRAME);
        for thumbnail in uploads.thumbnails.drain(..take) {
            if self.atlas.write(queue, &thumbnail) {
                self.counts.thumbnails += 1;
                self.counts.bytes += thumbnail.rgba.len() as u64;
            }
        }
        if rebind {
            self.bind_group = Self::bind(
                device,
                &self.layout,
                &self.camera,
                &self.points,
                &self.colours,
                &self.overlay,
                &self.edges,
                &self.atlas,
                &self.sampler,
            );
        }
    }

    /// The atlas's shape.
    pub fn atlas_layout(&self) -> AtlasLayout {
        self.atlas.layout()
    }

    /// The one write of a frame that changes nothing else.
    pub fn write_camera(&self, queue: &wgpu::Queue, camera: &Camera) {
        let mut camera = *camera;
        camera.atlas_slots = AtlasLayout::slots_per_row() as f32;
        queue.write_buffer(&self.camera, 0, bytemuck::bytes_of(&camera));
    }

    /// Records the map's draws (edges, points, overlay) into `pass`.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'static>, show_edges: bool) {
        pass.set_bind_group(0, &self.bind_group, &[]);
        let colours_ready = self.colours.len >= self.points.len;
        if show_edges && self.edges.len > 0 && self.points.len > 0 {
            pass.set_pipeline(&self.edges_pipeline);
            pass.draw(0..6, 0..self.edges.len);
        }
        if self.points.len > 0 && colours_ready {
            pass.set_pipeline(&self.points_pipeline);
            pass.draw(0..6, 0..self.points.len);
        }
        if self.overlay.len > 0 && self.points.len > 0 {
            pass.set_pipeline(&self.overlay_pipeline);
            pass.draw(0..6, 0..self.overlay.len);
        }
    }
}

/// The GPU objects of every map on screen (the compare view shows two), by [`MapCallback::map`].
#[derive(Debug, Default)]
pub struct MapGpus {
    pub maps: std::collections::BTreeMap<u32, MapGpu>,
}

/// One frame of the map: the camera and where the changes wait. Made by the app every frame
/// (cheap: a uniform and an `Arc`).
#[derive(Debug, Clone)]
pub struct MapCallback {
    /// Which map this is: each has its own buffers, atlas and camera.
    pub map: u32,
    pub camera: Camera,
    pub uploads: Arc<Mutex<MapUploads>>,
    pub target_format: wgpu::TextureFormat,
    pub show_edges: bool,
}

impl CallbackTrait for MapCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if resources.get::<MapGpus>().is_none() {
            resources.insert(MapGpus::default());
        }
        let gpus = resources.get_mut::<MapGpus>().expect("inserted just above");
        let gpu = gpus
            .maps
            .entry(self.map)
            .or_insert_with(|| MapGpu::new(device, self.target_format));
        {
            // A poisoned lock means the app panicked mid-update: draw what the GPU has.
            let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
            gpu.apply(device, queue, &mut uploads);
        }
        gpu.write_camera(queue, &self.camera);
        Vec::new()
    }

    fn paint(
        &self,
        info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let _ = info;
        if let Some(gpu) = resources
            .get::<MapGpus>()
            .and_then(|gpus| gpus.maps.get(&self.map))
        {
            gpu.draw(pass, self.show_edges);
        }
    }
}
