//! `cargo bench --bench map`: the explorer's map renderer on whatever adapter wgpu picks (Mesa's
//! lavapipe on a machine without a GPU): 10k, 100k and 1M points with 50k thumbnails. Per size:
//! the upload of a layout change, the CPU time of a frame that changes nothing (it must stay
//! flat as N grows: only the camera is written), the frame time until the GPU is done, the
//! atlas fill and its memory. Writes `target/bench/map.json`.

use std::time::Instant;

use crossclr::render::{
    AtlasLayout, Camera, GpuEdge, GpuOverlay, GpuPoint, MapGpu, MapUploads, OverlayStyle,
    THUMB_SIDE, Thumbnail, pack_colour,
};
use egui_wgpu::wgpu;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIDE: u32 = 1280;
const HEIGHT: u32 = 800;
const THUMBNAILS: usize = 50_000;
const FRAMES: usize = 30;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn points(n: usize, rng: &mut ChaCha8Rng) -> Vec<GpuPoint> {
    let layout = AtlasLayout::for_thumbnails(THUMBNAILS);
    (0..n)
        .map(|i| {
            // Twenty Gaussian-ish clusters, as a t-SNE map of a labelled set looks.
            let c = (i % 20) as f32;
            let (cx, cy) = ((c * 0.7).cos() * 40.0, (c * 0.7).sin() * 40.0);
            GpuPoint {
                position: [
                    cx + rng.random_range(-8.0..8.0),
                    cy + rng.random_range(-8.0..8.0),
                ],
                size: 1.0,
                tile: if i < THUMBNAILS {
                    layout.tile(i)
                } else {
                    crossclr::render::NO_TILE
                },
            }
        })
        .collect()
}

fn main() {
    let state = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        egui_wgpu::RendererOptions::default(),
    );
    let adapter = state.adapter.get_info();
    let (device, queue) = (&state.device, &state.queue);
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let target = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("bench-target"),
        size: wgpu::Extent3d {
            width: SIDE,
            height: HEIGHT,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let view = target.create_view(&wgpu::TextureViewDescriptor::default());
    let mut gpu = MapGpu::new(device, format);
    let mut rng = ChaCha8Rng::seed_from_u64(0);

    let frame =
        |gpu: &mut MapGpu, uploads: &mut MapUploads, camera: &Camera, wait: bool| -> (f64, f64) {
            let started = Instant::now();
            gpu.apply(device, queue, uploads);
            gpu.write_camera(queue, camera);
            let mut encoder =
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            {
                let mut pass = encoder
                    .begin_render_pass(&wgpu::RenderPassDescriptor {
                        label: Some("bench-map"),
                        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                            view: &view,
                            depth_slice: None,
                            resolve_target: None,
                            ops: wgpu::Operations {
                                load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                                store: wgpu::StoreOp::Store,
                            },
                        })],
                        ..Default::default()
                    })
                    .forget_lifetime();
                gpu.draw(&mut pass, true);
            }
            queue.submit([encoder.finish()]);
            let cpu = started.elapsed().as_secs_f64();
            if wait {
                device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .expect("the GPU finishes the frame");
            }
            (cpu, started.elapsed().as_secs_f64())
        };

    // The atlas: 50k thumbnails of noise, uploaded as the app does (a page of slots per frame).
    let layout =
        AtlasLayout::for_thumbnails(THUMBNAILS).capped(device.limits().max_texture_array_layers);
    let mut uploads = MapUploads {
        atlas: Some(layout),
        ..Default::default()
    };
    let started = Instant::now();
    let pixels = (THUMB_SIDE * THUMB_SIDE * 4) as usize;
    uploads.thumbnails = (0..THUMBNAILS.min(layout.capacity()))
        .map(|i| Thumbnail {
            tile: layout.tile(i),
            rgba: (0..pixels).map(|p| ((p * 7 + i) % 251) as u8).collect(),
        })
        .collect();
    let camera = Camera {
        half_size: [SIDE as f32 / 2.0, HEIGHT as f32 / 2.0],
        scale: 8.0,
        thumb_size: 24.0,
        ..Camera::default()
    };
    while !uploads.thumbnails.is_empty() {
        frame(&mut gpu, &mut uploads, &camera, false);
    }
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the atlas is written");
    let atlas_seconds = started.elapsed().as_secs_f64();

    let mut results = Vec::new();
    for n in [10_000usize, 100_000, 1_000_000] {
        let points = points(n, &mut rng);
        let colours: Vec<u32> = (0..n)
            .map(|i| pack_colour([(i * 37 % 255) as u8, 120, 200, 255]))
            .collect();
        let edges: Vec<GpuEdge> = (0..n.min(200_000))
            .map(|i| {
                GpuEdge::new(
                    i as u32,
                    ((i * 7919) % n) as u32,
                    pack_colour([200, 200, 200, 60]),
                )
            })
            .collect();
        let overlay: Vec<GpuOverlay> = (0..64)
            .map(|i| GpuOverlay::new(i, pack_colour([255, 255, 255, 255]), OverlayStyle::Ring))
            .collect();
        // A layout change: positions, colours, edges and the overlay together.
        let mut uploads = MapUploads {
            points: Some(points.into()),
            colours: Some(colours.into()),
            edges: Some(edges.into()),
            overlay: Some(overlay.into()),
            ..Default::default()
        };
        let before = gpu.counts;
        let (upload_cpu, upload_total) = frame(&mut gpu, &mut uploads, &camera, true);
        let uploaded = gpu.counts.bytes - before.bytes;
        let mut cpu = Vec::new();
        let mut total = Vec::new();
        for f in 0..FRAMES {
            let mut moved = camera;
            moved.center = [f as f32 * 0.1, 0.0];
            let (c, t) = frame(&mut gpu, &mut MapUploads::default(), &moved, true);
            cpu.push(c);
            total.push(t);
        }
        let line = serde_json::json!({
            "points": n,
            "upload_seconds": upload_total,
            "upload_cpu_seconds": upload_cpu,
            "upload_bytes": uploaded,
            "frame_cpu_ms_median": 1e3 * median(cpu.clone()),
            "frame_ms_median": 1e3 * median(total.clone()),
        });
        println!("{line}");
        results.push(line);
    }
    let report = serde_json::json!({
        "adapter": format!("{} ({:?})", adapter.name, adapter.device_type),
        "thumbnails": THUMBNAILS.min(layout.capacity()),
        "atlas_pages": layout.pages,
        "atlas_bytes": layout.bytes(),
        "atlas_fill_seconds": atlas_seconds,
        "viewport": [SIDE, HEIGHT],
        "sizes": results,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(
        dir.join("map.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .expect("map.json");
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
